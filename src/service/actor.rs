//! Who is acting: a member of staff with a role and communities. The admin API builds one
//! from a bearer token (`api::auth`); the console's session will build the same.

use super::{ServiceError, ServiceResult};
pub use crate::store::staff::Role;
use crate::store::{staff::TokenHolder, CommunityId, CoordinatorId};

/// A member of staff acting through the API or the console.
///
/// - admin: everything;
/// - coordinator: their communities, money included;
/// - counsellor: every community, no money;
/// - officer (a programme officer): reads their communities, changes nothing.
#[derive(Debug, Clone)]
pub struct Actor {
    pub coordinator_id: i64,
    pub role: Role,
    /// The communities named for them (admins and counsellors see all whatever this says).
    pub communities: Vec<i64>,
    /// The request this action belongs to, if the edge has an id for it (kept in the audit
    /// log).
    pub request_id: Option<String>,
}

impl Actor {
    pub fn new(holder: TokenHolder) -> Actor {
        Actor {
            coordinator_id: holder.coordinator.0,
            role: holder.role,
            communities: holder.communities.into_iter().map(|c| c.0).collect(),
            request_id: None,
        }
    }

    pub fn id(&self) -> CoordinatorId {
        CoordinatorId(self.coordinator_id)
    }

    /// Whether they see every community (admins and counsellors).
    pub fn sees_all(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Counsellor)
    }

    pub fn may(&self, community: i64) -> bool {
        self.sees_all() || self.communities.contains(&community)
    }

    pub fn may_see(&self, community: CommunityId) -> bool {
        self.may(community.0)
    }

    /// Forbidden unless they may act on `community`.
    pub fn require(&self, community: i64) -> ServiceResult<()> {
        if self.may(community) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    /// Forbidden unless an admin is acting (global data: communities, tips, rates,
    /// reversals).
    pub fn require_admin(&self) -> ServiceResult<()> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    /// Whether they may record or change money (admins and coordinators).
    pub fn handles_money(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Coordinator)
    }

    /// Forbidden unless they may record or change money.
    pub fn require_money(&self) -> ServiceResult<()> {
        if self.handles_money() {
            Ok(())
        } else {
            Err(ServiceError::Forbidden)
        }
    }

    /// Whether they only read (programme officers).
    pub fn read_only(&self) -> bool {
        self.role == Role::Officer
    }

    /// How rows they write name who did it (`recorded_by`, `created_by`, the audit log).
    pub fn who(&self) -> String {
        format!("coordinator:{}", self.coordinator_id)
    }

    /// The communities a list may show: `None` for all (admins, counsellors).
    pub fn scope(&self) -> Option<&[i64]> {
        (!self.sees_all()).then_some(self.communities.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role) -> Actor {
        Actor {
            coordinator_id: 7,
            role,
            communities: vec![1],
            request_id: None,
        }
    }

    #[test]
    fn roles_decide_scope_and_money() {
        for (role, all, money, admin) in [
            (Role::Admin, true, true, true),
            (Role::Coordinator, false, true, false),
            (Role::Counsellor, true, false, false),
            (Role::Officer, false, false, false),
        ] {
            let a = actor(role);
            assert!(a.may(1), "{role}");
            assert_eq!(a.may(2), all, "{role}");
            assert_eq!(a.scope().is_none(), all, "{role}");
            assert_eq!(a.require_money().is_ok(), money, "{role}");
            assert_eq!(a.require_admin().is_ok(), admin, "{role}");
        }
        assert_eq!(actor(Role::Officer).who(), "coordinator:7");
    }
}
