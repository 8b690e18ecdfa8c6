//! The DynamoDB held-jobs adapter against a mocked client: the item it writes, the reads, and a
//! conditional delete that a newer hold wins.

use aws_sdk_dynamodb::operation::delete_item::{DeleteItemError, DeleteItemOutput};
use aws_sdk_dynamodb::operation::get_item::GetItemOutput;
use aws_sdk_dynamodb::operation::put_item::PutItemOutput;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use ec2_build_aws::{DynamoDbHeldJobs, RECORD_LIFETIME_SECONDS};
use ec2_build_core::model::HeldJob;
use ec2_build_core::ports::HeldJobs;
use std::collections::HashMap;

const TABLE: &str = "stack-HeldJobs";
const EXEC: &str = "arn:aws:states:us-east-1:1:execution:sm:job-1";

fn held(job_id: &str) -> HeldJob {
    HeldJob {
        execution_arn: EXEC.into(),
        job_id: job_id.into(),
        token: format!("{EXEC}|RunBuild"),
        held_at_ms: 1_000,
    }
}

fn item(job: &HeldJob) -> HashMap<String, AttributeValue> {
    HashMap::from([
        (
            "execution_arn".into(),
            AttributeValue::S(job.execution_arn.clone()),
        ),
        ("job_id".into(), AttributeValue::S(job.job_id.clone())),
        ("token".into(), AttributeValue::S(job.token.clone())),
        (
            "held_at_ms".into(),
            AttributeValue::N(job.held_at_ms.to_string()),
        ),
    ])
}

#[tokio::test]
async fn hold_writes_the_record_with_its_expiry_only_over_an_older_hold() {
    let expected = {
        let mut item = item(&held("c-1"));
        item.insert(
            "expires_at".into(),
            AttributeValue::N((1 + RECORD_LIFETIME_SECONDS).to_string()),
        );
        item
    };
    let put = mock!(aws_sdk_dynamodb::Client::put_item)
        .match_requests(move |r| {
            r.table_name() == Some(TABLE)
                && r.item() == Some(&expected)
                && r.condition_expression()
                    == Some("attribute_not_exists(execution_arn) OR held_at_ms <= :held_at_ms")
                && r.expression_attribute_values()
                    .and_then(|v| v.get(":held_at_ms"))
                    == Some(&AttributeValue::N("1000".into()))
        })
        .then_output(|| PutItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&put]);
    DynamoDbHeldJobs::new(client, TABLE)
        .hold(&held("c-1"))
        .await
        .unwrap();
    assert_eq!(put.num_calls(), 1);
}

#[tokio::test]
async fn held_for_reads_consistently_and_maps_a_missing_record_to_none() {
    let found = mock!(aws_sdk_dynamodb::Client::get_item)
        .match_requests(|r| {
            r.consistent_read() == Some(true)
                && r.key().and_then(|k| k.get("execution_arn"))
                    == Some(&AttributeValue::S(EXEC.into()))
        })
        .then_output(|| {
            GetItemOutput::builder()
                .set_item(Some(item(&held("c-1"))))
                .build()
        });
    let missing =
        mock!(aws_sdk_dynamodb::Client::get_item).then_output(|| GetItemOutput::builder().build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&found, &missing]);
    let table = DynamoDbHeldJobs::new(client, TABLE);
    assert_eq!(table.held_for(EXEC).await.unwrap(), Some(held("c-1")));
    assert_eq!(table.held_for(EXEC).await.unwrap(), None);
}

#[tokio::test]
async fn all_held_reads_every_page() {
    let first = mock!(aws_sdk_dynamodb::Client::scan)
        .match_requests(|r| r.exclusive_start_key().is_none())
        .then_output(|| {
            ScanOutput::builder()
                .items(item(&held("c-1")))
                .last_evaluated_key("execution_arn", AttributeValue::S(EXEC.into()))
                .build()
        });
    let second = mock!(aws_sdk_dynamodb::Client::scan)
        .match_requests(|r| r.exclusive_start_key().is_some())
        .then_output(|| ScanOutput::builder().items(item(&held("c-2"))).build());
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&first, &second]);
    let all = DynamoDbHeldJobs::new(client, TABLE)
        .all_held()
        .await
        .unwrap();
    assert_eq!(all, vec![held("c-1"), held("c-2")]);
}

#[tokio::test]
async fn forget_deletes_only_the_named_job_and_a_newer_hold_wins() {
    let delete = mock!(aws_sdk_dynamodb::Client::delete_item)
        .match_requests(|r| {
            r.condition_expression() == Some("job_id = :job")
                && r.expression_attribute_values().and_then(|v| v.get(":job"))
                    == Some(&AttributeValue::S("c-1".into()))
        })
        .then_output(|| DeleteItemOutput::builder().build());
    let newer = mock!(aws_sdk_dynamodb::Client::delete_item).then_error(|| {
        DeleteItemError::ConditionalCheckFailedException(
            aws_sdk_dynamodb::types::error::ConditionalCheckFailedException::builder().build(),
        )
    });
    let client = mock_client!(aws_sdk_dynamodb, RuleMode::Sequential, [&delete, &newer]);
    let table = DynamoDbHeldJobs::new(client, TABLE);
    table.forget(EXEC, "c-1").await.unwrap();
    table.forget(EXEC, "c-1").await.unwrap();
    assert_eq!(delete.num_calls(), 1);
    assert_eq!(newer.num_calls(), 1);
}
