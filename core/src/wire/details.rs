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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DetailsBody<T> {
    /// The details in one of the wire shapes.
    pub details: T,
}

/// Management API v1 details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "sequence": "2",
    "creationDate": "2024-06-13T06:44:37.424Z",
    "changeDate": "2024-06-13T06:44:37.424Z",
    "resourceOwner": "69629023906488334"
})))]
#[serde(rename_all = "camelCase")]
pub struct V1Details {
    /// Sequence, written as a decimal string.
    #[serde(serialize_with = "u64_as_string", deserialize_with = "u64_from_string")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, pattern = "^[0-9]+$"))]
    pub sequence: u64,
    /// Time of the first event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub creation_date: Timestamp,
    /// Time of the last event written.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub change_date: Timestamp,
    /// The owning organisation.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub resource_owner: OrgId,
}

/// Resources API v3alpha details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(example = json!({
    "id": "69629012906488334",
    "created": "2024-11-22T16:27:05.645Z",
    "changed": "2024-11-22T16:27:05.645Z",
    "owner": {"type": "OWNER_TYPE_ORG", "id": "69629023906488334"}
})))]
pub struct V3Details {
    /// The user's id.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: UserId,
    /// Time of the first event.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created: Timestamp,
    /// Time of the last event written.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub changed: Timestamp,
    /// Who owns the user.
    pub owner: Owner,
}

/// The owner of a resource in v3alpha.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Owner {
    /// Always an organisation here.
    #[serde(rename = "type")]
    pub owner_type: OwnerType,
    /// The owning organisation.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: OrgId,
}

/// The kind of owner in v3alpha.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
