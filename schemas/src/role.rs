//! The role agents. A closed set on purpose: work subjects, consumers and ownership checks are
//! derived from it, so a typo in a protocol file is caught at load time instead of creating a
//! queue nobody serves.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A role agent kind; every step and gate is owned by exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Capacity, allocation and cost of infrastructure.
    Resource,
    /// Provisioning, deployment and configuration.
    Devops,
    /// Hardening, scanning and access control.
    Security,
    /// Monitoring, validation and handover.
    Sre,
}

impl Role {
    /// Every role, in a stable order (used to provision one work consumer per role).
    pub const ALL: [Role; 4] = [Role::Resource, Role::Devops, Role::Security, Role::Sre];

    /// The lowercase name used in subjects, files and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Resource => "resource",
            Role::Devops => "devops",
            Role::Security => "security",
            Role::Sre => "sre",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error for a role name that is not one of [`Role::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}`; expected one of resource, devops, security, sre")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_refused() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert_eq!("dba".parse::<Role>(), Err(UnknownRole("dba".into())));
    }
}
