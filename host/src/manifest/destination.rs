//! The AWS resources an on-failure record can go to, read from the ARN in
//! `DestinationConfig.OnFailure.Destination` as Lambda's API takes it: an SQS
//! queue, an SNS topic, an S3 bucket, and (Eddy's own) a Kinesis stream.

/// An AWS destination, by its ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AwsTarget {
    /// `arn:aws:sqs:REGION:ACCOUNT:NAME`: the record is the message body.
    SqsQueue { arn: String, region: String, account: String, name: String },
    /// `arn:aws:sns:REGION:ACCOUNT:NAME`: the record is the message.
    SnsTopic { arn: String, region: String },
    /// `arn:aws:s3:::BUCKET`: one object per record, with the batch's `payload`.
    S3Bucket { arn: String, bucket: String },
    /// `arn:aws:kinesis:REGION:ACCOUNT:stream/NAME`: one stream record per record.
    KinesisStream { arn: String, region: String },
}

impl AwsTarget {
    /// Reads a destination ARN; the error says what was expected.
    pub fn parse(arn: &str) -> Result<AwsTarget, String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let [prefix, partition, service, region, account, resource] = parts[..] else {
            return Err(format!("{arn:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)"));
        };
        if prefix != "arn" || partition.is_empty() {
            return Err(format!("{arn:?} is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE)"));
        }
        let owned = |s: &str| s.to_owned();
        let regional = |what: &str| -> Result<(), String> {
            if region.is_empty() || account.is_empty() || resource.is_empty() {
                return Err(format!("{arn:?}: an {what} ARN names its region, account and name"));
            }
            Ok(())
        };
        match service {
            "sqs" => {
                regional("SQS queue")?;
                if resource.ends_with(".fifo") {
                    // As Lambda: a FIFO queue cannot take the records of a stream mapping.
                    return Err(format!("{arn:?} is a FIFO queue; Lambda's stream destinations are standard queues"));
                }
                Ok(AwsTarget::SqsQueue { arn: owned(arn), region: owned(region), account: owned(account), name: owned(resource) })
            }
            "sns" => {
                regional("SNS topic")?;
                if resource.ends_with(".fifo") {
                    return Err(format!("{arn:?} is a FIFO topic; Lambda's stream destinations are standard topics"));
                }
                Ok(AwsTarget::SnsTopic { arn: owned(arn), region: owned(region) })
            }
            "s3" => {
                if !region.is_empty() || !account.is_empty() || resource.is_empty() || resource.contains('/') {
                    return Err(format!("{arn:?}: an S3 bucket ARN is arn:aws:s3:::BUCKET"));
                }
                Ok(AwsTarget::S3Bucket { arn: owned(arn), bucket: owned(resource) })
            }
            "kinesis" => {
                regional("Kinesis stream")?;
                if resource.strip_prefix("stream/").is_none_or(str::is_empty) {
                    return Err(format!("{arn:?}: a Kinesis stream ARN ends in :stream/NAME"));
                }
                Ok(AwsTarget::KinesisStream { arn: owned(arn), region: owned(region) })
            }
            other => Err(format!(
                "{arn:?}: {other:?} is not a destination this host can write to; \
                 the ARN destinations are SQS queues, SNS topics, S3 buckets and Kinesis streams"
            )),
        }
    }

    pub fn arn(&self) -> &str {
        match self {
            AwsTarget::SqsQueue { arn, .. }
            | AwsTarget::SnsTopic { arn, .. }
            | AwsTarget::S3Bucket { arn, .. }
            | AwsTarget::KinesisStream { arn, .. } => arn,
        }
    }

    /// The region the ARN names (an S3 bucket's ARN names none).
    pub fn region(&self) -> Option<&str> {
        match self {
            AwsTarget::SqsQueue { region, .. } | AwsTarget::SnsTopic { region, .. } | AwsTarget::KinesisStream { region, .. } => {
                Some(region)
            }
            AwsTarget::S3Bucket { .. } => None,
        }
    }

    /// What the execution role must allow, on which resource, for the mapping to
    /// write here: Lambda's list (an S3 bucket needs `s3:PutObject` on its objects
    /// and `s3:ListBucket` on the bucket).
    pub fn required_grants(&self) -> Vec<(&'static str, String)> {
        match self {
            AwsTarget::SqsQueue { arn, .. } => vec![("sqs:SendMessage", arn.clone())],
            AwsTarget::SnsTopic { arn, .. } => vec![("sns:Publish", arn.clone())],
            AwsTarget::S3Bucket { arn, .. } => vec![("s3:PutObject", format!("{arn}/aws/lambda/*")), ("s3:ListBucket", arn.clone())],
            AwsTarget::KinesisStream { arn, .. } => vec![("kinesis:PutRecord", arn.clone())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambdas_destination_arns_are_read() {
        assert_eq!(
            AwsTarget::parse("arn:aws:sqs:us-east-2:123456789012:dlq"),
            Ok(AwsTarget::SqsQueue {
                arn: "arn:aws:sqs:us-east-2:123456789012:dlq".into(),
                region: "us-east-2".into(),
                account: "123456789012".into(),
                name: "dlq".into()
            })
        );
        let topic = AwsTarget::parse("arn:aws:sns:eu-west-1:123456789012:failures").unwrap();
        assert_eq!(topic.region(), Some("eu-west-1"));
        assert_eq!(topic.required_grants(), [("sns:Publish", "arn:aws:sns:eu-west-1:123456789012:failures".to_owned())]);
        let bucket = AwsTarget::parse("arn:aws:s3:::my-failures").unwrap();
        assert_eq!(bucket, AwsTarget::S3Bucket { arn: "arn:aws:s3:::my-failures".into(), bucket: "my-failures".into() });
        assert_eq!(bucket.region(), None);
        assert_eq!(
            bucket.required_grants(),
            [
                ("s3:PutObject", "arn:aws:s3:::my-failures/aws/lambda/*".to_owned()),
                ("s3:ListBucket", "arn:aws:s3:::my-failures".to_owned())
            ]
        );
        let stream = AwsTarget::parse("arn:aws:kinesis:us-east-1:000000000000:stream/out").unwrap();
        assert_eq!(stream.required_grants()[0].0, "kinesis:PutRecord");
        assert!(AwsTarget::parse("arn:aws-cn:sqs:cn-north-1:123456789012:q").is_ok(), "other partitions");
    }

    #[test]
    fn other_arns_are_refused_saying_why() {
        let refused = |arn: &str| AwsTarget::parse(arn).unwrap_err();
        assert!(refused("arn:aws:lambda:us-east-1:1:function:f").contains("SQS queues, SNS topics, S3 buckets and Kinesis"));
        assert!(refused("arn:aws:sqs:us-east-1:1:q.fifo").contains("FIFO"));
        assert!(refused("arn:aws:sns:us-east-1:1:t.fifo").contains("FIFO"));
        assert!(refused("arn:aws:sqs:::q").contains("region, account and name"));
        assert!(refused("arn:aws:s3:us-east-1::b").contains("arn:aws:s3:::BUCKET"));
        assert!(refused("arn:aws:s3:::b/key").contains("arn:aws:s3:::BUCKET"));
        assert!(refused("arn:aws:kinesis:us-east-1:1:table/x").contains(":stream/NAME"));
        assert!(refused("arn:aws:sqs").contains("not an ARN"));
    }
}
