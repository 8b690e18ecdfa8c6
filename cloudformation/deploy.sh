#!/usr/bin/env bash
# make deploy: deploy the ec2-build stack to YOUR AWS account with YOUR credentials.
# It needs an AWS account: nothing here works offline. Run `make package` first (make deploy does).
#
# Credentials and region come from the AWS CLI's usual sources (AWS_PROFILE, AWS_REGION /
# AWS_DEFAULT_REGION, environment variables, SSO). Settings, as environment variables:
#
#   DEPLOY_BUCKET          required  S3 bucket in the stack's region for the packaged code,
#                                    the state machine definition and the SSM document
#   VPC_ID                 required  VPC of the build instances
#   SUBNET_IDS             required  comma-separated subnets of that VPC (need a route to AWS APIs)
#   ARTIFACT_BUCKETS       required  comma-separated artifact bucket names of your pipelines
#   STACK_NAME             optional  default ec2-build
#   ARTIFACT_KMS_KEY_ARNS  optional  comma-separated customer managed keys of those buckets
#   ECR_REPOSITORY_ARNS    optional  comma-separated ECR repositories docker builds may push to
#   EXTRA_PARAMETERS       optional  more Key=Value overrides, space-separated (e.g. ActionVersion=2)
#   AWS_CLI                optional  the aws command (default: the project venv's, else `aws`)
set -euo pipefail

cd "$(dirname "$0")/.."

STACK_NAME=${STACK_NAME:-ec2-build}
missing=()
for name in DEPLOY_BUCKET VPC_ID SUBNET_IDS ARTIFACT_BUCKETS; do
  [ -n "${!name:-}" ] || missing+=("$name")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "deploy: set ${missing[*]} (see the top of cloudformation/deploy.sh and cloudformation/README.md)" >&2
  exit 2
fi
for bin in poller completion; do
  [ -x "build/lambda/$bin/bootstrap" ] || { echo "deploy: build/lambda/$bin/bootstrap missing: run make package" >&2; exit 2; }
done

if [ -z "${AWS_CLI:-}" ]; then
  if [ -x .venv/bin/aws ]; then AWS_CLI=.venv/bin/aws; else AWS_CLI=aws; fi
fi

"$AWS_CLI" sts get-caller-identity --query 'join(``, [`deploying as `, Arn])' --output text

mkdir -p build
# Uploads the CodeUri folders (zipped), statemachine/build.asl.json and, through the
# AWS::Include transform, ssm-documents/build.yml; writes the template that refers to them.
"$AWS_CLI" cloudformation package \
  --template-file cloudformation/template.yml \
  --s3-bucket "$DEPLOY_BUCKET" \
  --s3-prefix "$STACK_NAME" \
  --output-template-file build/packaged.yml

overrides=(
  "VpcId=$VPC_ID"
  "SubnetIds=$SUBNET_IDS"
  "ArtifactBucketNames=$ARTIFACT_BUCKETS"
)
[ -z "${ARTIFACT_KMS_KEY_ARNS:-}" ] || overrides+=("ArtifactKmsKeyArns=$ARTIFACT_KMS_KEY_ARNS")
[ -z "${ECR_REPOSITORY_ARNS:-}" ] || overrides+=("EcrRepositoryArns=$ECR_REPOSITORY_ARNS")
# shellcheck disable=SC2206 # EXTRA_PARAMETERS is a space-separated list on purpose
[ -z "${EXTRA_PARAMETERS:-}" ] || overrides+=($EXTRA_PARAMETERS)

"$AWS_CLI" cloudformation deploy \
  --template-file build/packaged.yml \
  --stack-name "$STACK_NAME" \
  --capabilities CAPABILITY_IAM CAPABILITY_AUTO_EXPAND \
  --parameter-overrides "${overrides[@]}" \
  --no-fail-on-empty-changeset

"$AWS_CLI" cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query 'Stacks[0].Outputs[].[OutputKey, OutputValue]' --output table
