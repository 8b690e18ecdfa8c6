//! What the two DynamoDB adapters share: string attributes and the answer of a conditional write.

use crate::error::service_error;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::AttributeValue;
use ec2_build_core::model::ServiceError;

pub(crate) const SERVICE: &str = "dynamodb";

/// A string attribute.
pub(crate) fn string(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// A conditional write's answer: `Ok(true)` when written, `Ok(false)` when its condition failed
/// (`condition_failed`: the operation's ConditionalCheckFailedException), any other failure as a
/// [`ServiceError`].
pub(crate) fn conditional_write<O, E, R>(
    operation: &'static str,
    result: Result<O, SdkError<E, R>>,
    condition_failed: impl Fn(&E) -> bool,
) -> Result<bool, ServiceError>
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.as_service_error().is_some_and(&condition_failed) => Ok(false),
        Err(e) => Err(service_error(SERVICE, operation, e)),
    }
}
