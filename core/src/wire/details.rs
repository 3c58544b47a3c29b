//! The details of a command in the Management API v1 and Resources API
//! v3alpha shapes, byte for byte like the seeds' examples.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::details::Details;
use crate::id::{OrgId, UserId};
use crate::timestamp::Timestamp;

impl Details {
    /// The Management API v1 body: `{"details":{"sequence":"2",...}}`.
    pub fn to_v1(&self) -> DetailsBody<V1Details> {
        DetailsBody {
            details: V1Details {
                sequence: self.sequence,
                creation_date: self.creation_date,
                change_date: self.change_date,
                resource_owner: self.resource_owner.clone(),
            },
        }
    }

    /// The Resources API v3alpha body: `{"details":{"id":...,"owner":{...}}}`.
    pub fn to_v3alpha(&self) -> DetailsBody<V3Details> {
        DetailsBody {
            details: V3Details {
                id: self.id.clone(),
                created: self.creation_date,
                changed: self.change_date,
                owner: Owner {
                    owner_type: OwnerType::Org,
                    id: self.resource_owner.clone(),
                },
            },
        }
    }
}

/// A response body that holds only `details`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DetailsBody<T> {
    /// The details in one of the wire shapes.
    pub details: T,
}

/// Management API v1 details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct V1Details {
    /// Sequence, written as a decimal string.
    #[serde(serialize_with = "u64_as_string", deserialize_with = "u64_from_string")]
    pub sequence: u64,
    /// Time of the first event.
    pub creation_date: Timestamp,
    /// Time of the last event written.
    pub change_date: Timestamp,
    /// The owning organisation.
    pub resource_owner: OrgId,
}

/// Resources API v3alpha details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct V3Details {
    /// The user's id.
    pub id: UserId,
    /// Time of the first event.
    pub created: Timestamp,
    /// Time of the last event written.
    pub changed: Timestamp,
    /// Who owns the user.
    pub owner: Owner,
}

/// The owner of a resource in v3alpha.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    /// Always an organisation here.
    #[serde(rename = "type")]
    pub owner_type: OwnerType,
    /// The owning organisation.
    pub id: OrgId,
}

/// The kind of owner in v3alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum OwnerType {
    /// `OWNER_TYPE_ORG`.
    #[serde(rename = "OWNER_TYPE_ORG")]
    Org,
}

fn u64_as_string<S: Serializer>(value: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(value)
}

fn u64_from_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(serde::de::Error::custom)
}
