//! Shapes of values that both the action configuration and the pool declarations carry: image
//! ids and instance types, checked the same way wherever they come from.

use super::error::ConfigError;

/// Parameter Store paths `resolve:ssm:` may name: the state machine's role may read only these.
pub const ALLOWED_PARAMETER_PREFIXES: [&str; 2] = ["/ec2-build/", "/aws/service/"];

/// The value cut to 64 characters, for error messages.
pub fn shorten(value: &str) -> String {
    const MAX: usize = 64;
    match value.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &value[..i]),
        None => value.to_string(),
    }
}

/// An AMI id or `resolve:ssm:<parameter>` under [`ALLOWED_PARAMETER_PREFIXES`]; the error names
/// `ImageId`.
pub fn validate_image_id(value: &str) -> Result<(), ConfigError> {
    if let Some(hex) = value.strip_prefix("ami-") {
        if (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Ok(());
        }
    } else if let Some(parameter) = value.strip_prefix("resolve:ssm:") {
        let ok = !parameter.is_empty()
            && parameter.len() <= 2048
            && parameter
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-/:".contains(&b));
        if ok
            && !ALLOWED_PARAMETER_PREFIXES
                .iter()
                .any(|prefix| parameter.starts_with(prefix))
        {
            return Err(ConfigError::new(
                "ImageId",
                format!("names the parameter {:?}, outside the paths the build may read", shorten(parameter)),
                "store the AMI id under /ec2-build/ (the Windows build AMI pipeline publishes /ec2-build/windows-build-ami) or use a public /aws/service/ parameter",
            ));
        }
        if ok {
            return Ok(());
        }
    }
    Err(ConfigError::new(
        "ImageId",
        format!("is {:?}, neither an AMI id nor resolve:ssm:<parameter name>", shorten(value)),
        "use an AMI id such as ami-0123456789abcdef0 (ami- and 8 or 17 lower-case hex digits) or resolve:ssm:/my/ami-parameter",
    ))
}

/// `family.size`, lower case: t3.large, m5d.metal, u-6tb1.112xlarge, g4dn.xlarge.
pub fn is_instance_type(value: &str) -> bool {
    let Some((family, size)) = value.split_once('.') else {
        return false;
    };
    let family_ok = family.len() <= 16
        && family.starts_with(|c: char| c.is_ascii_lowercase())
        && family
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    let size_ok = !size.is_empty()
        && size.len() <= 16
        && size
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    family_ok && size_ok
}
