//! Whether a verified person may answer a given prompt.
//!
//! A protocol names who may answer each human step or escalation (`responders: {groups,
//! users}`) and declares its groups with the members known when it was written; the deployment's
//! responder map can put more people in those groups (`people.NAME.groups`), so on-call rotations
//! change without editing protocols. Entries are person names, the keys of the map's `people`,
//! never channel identities: an id like `alice` could be one person's CLI name and another
//! person's name.

use super::map::ResponderMap;
use muster_schemas::protocol::model::{GroupSpec, Responders};
use std::collections::BTreeMap;

/// Whether `person` may answer a prompt whose responders are `responders`.
///
/// True when the person is listed in `users`, or belongs to one of the listed `groups`, either
/// as a `members` entry of the protocol's group or through their own `groups` in the map. An
/// empty responders set means nobody may answer. A listed group the protocol does not declare
/// can still be filled from the map.
pub fn may_answer(
    map: &ResponderMap,
    person: &str,
    responders: &Responders,
    protocol_groups: &BTreeMap<String, GroupSpec>,
) -> bool {
    if responders.users.iter().any(|user| user == person) {
        return true;
    }
    let map_groups = map.people.get(person).map(|p| p.groups.as_slice()).unwrap_or_default();
    responders.groups.iter().any(|group| {
        let in_protocol = protocol_groups.get(group).is_some_and(|spec| spec.members.iter().any(|m| m == person));
        in_protocol || map_groups.contains(group)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authority::map::Person;

    fn responders(groups: &[&str], users: &[&str]) -> Responders {
        Responders {
            groups: groups.iter().map(|s| (*s).to_owned()).collect(),
            users: users.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    fn setup() -> (ResponderMap, BTreeMap<String, GroupSpec>) {
        let map = ResponderMap {
            people: BTreeMap::from([
                ("carol".into(), Person { groups: vec!["dba".into()], ..Person::default() }),
                ("dave".into(), Person { cli: vec!["erin".into()], ..Person::default() }),
            ]),
            principals: BTreeMap::new(),
        };
        let groups = BTreeMap::from([(
            "sre-oncall".to_owned(),
            GroupSpec { description: None, channel: None, members: vec!["alice".into()] },
        )]);
        (map, groups)
    }

    #[test]
    fn a_listed_user_may_answer() {
        let (map, groups) = setup();
        assert!(may_answer(&map, "bob", &responders(&[], &["bob"]), &groups));
        assert!(may_answer(&map, "bob", &responders(&["sre-oncall"], &["bob"]), &groups));
    }

    #[test]
    fn a_member_of_a_listed_protocol_group_may_answer() {
        let (map, groups) = setup();
        assert!(may_answer(&map, "alice", &responders(&["sre-oncall"], &[]), &groups));
    }

    #[test]
    fn a_member_by_the_responder_map_may_answer_even_if_the_protocol_does_not_declare_the_group() {
        let (map, groups) = setup();
        assert!(may_answer(&map, "carol", &responders(&["dba"], &[]), &groups));
        let mut with_group = groups.clone();
        with_group.insert("dba".into(), GroupSpec { description: None, channel: None, members: vec![] });
        assert!(may_answer(&map, "carol", &responders(&["dba"], &[]), &with_group));
    }

    #[test]
    fn empty_responders_admit_nobody() {
        let (map, groups) = setup();
        for person in ["alice", "bob", "carol", "dave"] {
            assert!(!may_answer(&map, person, &Responders::default(), &groups), "{person}");
        }
    }

    #[test]
    fn someone_unlisted_may_not_answer() {
        let (map, groups) = setup();
        let r = responders(&["sre-oncall"], &["bob"]);
        assert!(!may_answer(&map, "carol", &r, &groups), "carol's map group is not listed");
        assert!(!may_answer(&map, "mallory", &r, &groups), "nobody in the map");
        assert!(!may_answer(&map, "alice", &responders(&["dba"], &[]), &groups), "other group");
        // Entries are person names: dave's CLI name `erin` does not make him `erin`.
        assert!(!may_answer(&map, "dave", &responders(&[], &["erin"]), &groups));
        // Group names are not people.
        assert!(!may_answer(&map, "sre-oncall", &responders(&["sre-oncall"], &[]), &groups));
    }
}
