#!/usr/bin/env bash
# make deploy-windows-ami: deploy the Windows build AMI pipeline (cloudformation/windows-build-ami.yml)
# to YOUR AWS account with YOUR credentials. It needs an AWS account.
#
# Image Builder components and recipes are immutable per name and version, and CloudFormation
# replaces a changed one by creating the new one first: a change under the same version fails
# the stack update ("already exists"). So the version (1.0.<ContentRevision>) is derived here
# from a SHA-256 of the template text and the parameter overrides: every change of either gives
# a new version, a deploy without a change keeps it (and changes nothing).
#
# Settings, as environment variables:
#   STACK_NAME        optional  default ec2-build-windows-ami
#   PARAMETERS        optional  Key=Value overrides, space-separated (e.g. "DockerVersion=27.5.1
#                               SubnetId=subnet-1 SecurityGroupId=sg-1"); see the template
#   START_BAKE        optional  1: start a pipeline execution (a bake) after the deploy
#   AWS_CLI           optional  the aws command (default: the project venv's, else `aws`)
#   PRINT_REVISION    optional  1: print the ContentRevision and exit, without AWS calls
set -euo pipefail

cd "$(dirname "$0")/.."

TEMPLATE=cloudformation/windows-build-ami.yml
STACK_NAME=${STACK_NAME:-ec2-build-windows-ami}
# shellcheck disable=SC2206 # PARAMETERS is a space-separated list on purpose
overrides=(${PARAMETERS:-})

# 1 + the first 7 hex digits of the hash: below 2^28 + 1, inside Image Builder's limit of
# 2^30 - 1 per version node ("Semantic versioning in Image Builder").
revision_of() {
  local digest
  digest=$( { cat "$TEMPLATE"; printf '%s\n' ${overrides[@]+"${overrides[@]}"} | LC_ALL=C sort; } | sha256sum | cut -c1-7)
  echo $((16#$digest + 1))
}
REVISION=$(revision_of)
if [ "${PRINT_REVISION:-}" = 1 ]; then
  echo "$REVISION"
  exit 0
fi

if [ -z "${AWS_CLI:-}" ]; then
  if [ -x .venv/bin/aws ]; then AWS_CLI=.venv/bin/aws; else AWS_CLI=aws; fi
fi

"$AWS_CLI" sts get-caller-identity --query 'join(``, [`deploying as `, Arn])' --output text
echo "deploy-windows-ami: components and recipe at version 1.0.$REVISION"
"$AWS_CLI" cloudformation deploy \
  --template-file "$TEMPLATE" \
  --stack-name "$STACK_NAME" \
  --capabilities CAPABILITY_IAM \
  --parameter-overrides "ContentRevision=$REVISION" ${overrides[@]+"${overrides[@]}"} \
  --no-fail-on-empty-changeset

pipeline=$("$AWS_CLI" cloudformation describe-stacks --stack-name "$STACK_NAME" \
  --query "Stacks[0].Outputs[?OutputKey=='PipelineArn'].OutputValue" --output text)
if [ "${START_BAKE:-}" = 1 ]; then
  "$AWS_CLI" imagebuilder start-image-pipeline-execution --image-pipeline-arn "$pipeline"
else
  echo "deploy-windows-ami: start a bake with: aws imagebuilder start-image-pipeline-execution --image-pipeline-arn $pipeline"
fi
