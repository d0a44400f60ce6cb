//! The image's users: which names `USER` and `COPY --chown` may take, the uid and gid each
//! resolves to, and the `/etc/passwd` and `/etc/group` an image with a named user gets: root,
//! nobody and the user, as nixpkgs' `dockerTools.fakeNss` has them, or a base image's own
//! files with the user added.

use std::fmt::Write as _;

/// A user or group as `USER` and `--chown` take it ([`crate::names::Kind::User`]).
pub fn valid_id(part: &str) -> bool {
    crate::names::check(crate::names::Kind::User, part).is_ok()
}

/// The ids a named user gets when the base image does not have it (`NIX_USER_UID`,
/// `NIX_USER_GID`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
}

/// One `/etc/passwd` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Account {
    name: String,
    uid: u32,
    gid: u32,
}

/// One `/etc/group` line.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    name: String,
    gid: u32,
}

fn accounts(passwd: &str) -> Vec<Account> {
    passwd
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(Account {
                name: fields.first()?.to_string(),
                uid: fields.get(2)?.parse().ok()?,
                gid: fields.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

fn groups(group: &str) -> Vec<Group> {
    group
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            Some(Group { name: fields.first()?.to_string(), gid: fields.get(2)?.parse().ok()? })
        })
        .collect()
}

/// What the base image already has (its `/etc/passwd` and `/etc/group`), if anything.
#[derive(Debug, Clone, Default)]
pub struct BaseFiles {
    pub passwd: Option<String>,
    pub group: Option<String>,
}

/// A file nixfront writes into the image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFile {
    pub path: &'static str,
    pub text: String,
}

/// The users of the image, as `USER` and the base image make them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Users {
    /// Everyone `--chown` may name: the base image's, or root and nobody, and the user.
    accounts: Vec<Account>,
    groups: Vec<Group>,
    /// `uid:gid` the image runs as, when USER is given.
    pub run_as: Option<(u32, u32)>,
    /// `/etc/passwd` and `/etc/group` to write, when USER adds someone.
    pub files: Vec<EtcFile>,
    /// The added user's home directory, owned by it.
    pub home: Option<String>,
}

const FAKE_PASSWD: &str =
    "root:x:0:0:root user:/var/empty:/bin/sh\nnobody:x:65534:65534:nobody:/var/empty:/bin/sh\n";
const FAKE_GROUP: &str = "root:x:0:\nnobody:x:65534:\n";

impl Users {
    /// The users for `USER user[:group]` (as written, or absent) with `ids` for a new name
    /// and the base image's files. The error says what is wrong, for the USER line.
    pub fn plan(user: Option<&str>, ids: Ids, base: &BaseFiles) -> Result<Users, String> {
        let passwd_text = base.passwd.clone().unwrap_or_else(|| FAKE_PASSWD.to_string());
        let group_text = base.group.clone().unwrap_or_else(|| FAKE_GROUP.to_string());
        let mut users =
            Users { accounts: accounts(&passwd_text), groups: groups(&group_text), ..Default::default() };
        let Some(spec) = user else { return Ok(users) };
        let (name, group) = match spec.split_once(':') {
            Some((n, g)) => (n, Some(g)),
            None => (spec, None),
        };
        if crate::names::is_id_number(name) && group.is_none_or(crate::names::is_id_number) {
            // Numeric, as Docker takes it: the gid the passwd entry gives, else 0.
            let uid: u32 = name.parse().expect("a number");
            let gid = match group {
                Some(g) => g.parse().expect("a number"),
                None => users.accounts.iter().find(|a| a.uid == uid).map_or(0, |a| a.gid),
            };
            users.run_as = Some((uid, gid));
            return Ok(users);
        }
        let (mut add_user, mut add_group) = (None, None);
        let account = match users.accounts.iter().find(|a| a.name == name) {
            Some(a) => a.clone(),
            None if crate::names::is_id_number(name) => {
                Account { name: String::new(), uid: name.parse().expect("a number"), gid: ids.gid }
            }
            None => {
                if let Some(other) = users.accounts.iter().find(|a| a.uid == ids.uid) {
                    return Err(format!(
                        "uid {} is {}'s in the base image: set another with --build-arg NIX_USER_UID=<uid>",
                        ids.uid, other.name
                    ));
                }
                let account = Account { name: name.to_string(), uid: ids.uid, gid: ids.gid };
                add_user = Some(account.clone());
                account
            }
        };
        let group_name = group.unwrap_or(if add_user.is_some() { name } else { "" });
        let gid = if crate::names::is_id_number(group_name) {
            group_name.parse().expect("a number")
        } else if group_name.is_empty() {
            account.gid
        } else {
            match users.groups.iter().find(|g| g.name == group_name) {
                Some(g) => g.gid,
                None => {
                    let gid = if add_user.is_some() || group.is_some() { ids.gid } else { account.gid };
                    if let Some(other) = users.groups.iter().find(|g| g.gid == gid) {
                        return Err(format!(
                            "gid {gid} is group {}'s in the base image: set another with --build-arg NIX_USER_GID=<gid>",
                            other.name
                        ));
                    }
                    add_group = Some(Group { name: group_name.to_string(), gid });
                    gid
                }
            }
        };
        if let Some(account) = add_user.as_mut() {
            account.gid = gid;
        }
        users.run_as = Some((account.uid, gid));
        let mut passwd = passwd_text;
        if let Some(account) = &add_user {
            if !passwd.is_empty() && !passwd.ends_with('\n') {
                passwd.push('\n');
            }
            let home = format!("/home/{}", account.name);
            let _ =
                writeln!(passwd, "{}:x:{}:{}::{home}:/sbin/nologin", account.name, account.uid, account.gid);
            users.home = Some(home);
            users.accounts.push(account.clone());
            users.files.push(EtcFile { path: "/etc/passwd", text: passwd });
        }
        let mut group_file = group_text;
        if let Some(group) = &add_group {
            if !group_file.is_empty() && !group_file.ends_with('\n') {
                group_file.push('\n');
            }
            let _ = writeln!(group_file, "{}:x:{}:", group.name, group.gid);
            users.groups.push(group.clone());
        }
        if add_user.is_some() || add_group.is_some() {
            users.files.push(EtcFile { path: "/etc/group", text: group_file });
        }
        Ok(users)
    }

    /// `uid:gid` for `--chown=user[:group]`: names resolved in the image's files, a user alone
    /// owning with its own group (a number alone with the same number, as Docker does).
    pub fn owner(&self, spec: &str) -> Result<(u32, u32), String> {
        let (name, group) = match spec.split_once(':') {
            Some((n, g)) => (n, Some(g)),
            None => (spec, None),
        };
        let known = || {
            let names: Vec<&str> = self.accounts.iter().map(|a| a.name.as_str()).collect();
            names.join(", ")
        };
        let (uid, own_gid) = if crate::names::is_id_number(name) {
            let uid: u32 = name.parse().expect("a number");
            (uid, self.accounts.iter().find(|a| a.uid == uid).map_or(uid, |a| a.gid))
        } else {
            let account = self.accounts.iter().find(|a| a.name == name).ok_or_else(|| {
                format!("the image has no user {name} (it has {}); name the USER, or give a uid", known())
            })?;
            (account.uid, account.gid)
        };
        let gid = match group {
            None => own_gid,
            Some(g) if crate::names::is_id_number(g) => g.parse().expect("a number"),
            Some(g) => self.groups.iter().find(|x| x.name == g).map(|x| x.gid).ok_or_else(|| {
                let names: Vec<&str> = self.groups.iter().map(|x| x.name.as_str()).collect();
                format!("the image has no group {g} (it has {}); give a gid", names.join(", "))
            })?,
        };
        Ok((uid, gid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDS: Ids = Ids { uid: 1000, gid: 1000 };

    #[test]
    fn names_useradd_takes_and_numbers() {
        for good in ["app", "_svc", "a-b_c9", "0", "65534", &"a".repeat(32)] {
            assert!(valid_id(good), "{good}");
        }
        for bad in ["", "App", "9lives", "a b", "a:b", "ü", &"a".repeat(33), "99999999999"] {
            assert!(!valid_id(bad), "{bad}");
        }
    }

    #[test]
    fn a_named_user_gets_fake_nss_files_a_group_of_its_name_and_a_home() {
        let users = Users::plan(Some("app"), IDS, &BaseFiles::default()).unwrap();
        assert_eq!(users.run_as, Some((1000, 1000)));
        assert_eq!(users.home.as_deref(), Some("/home/app"));
        let passwd = &users.files[0];
        assert_eq!(passwd.path, "/etc/passwd");
        assert!(passwd.text.starts_with("root:x:0:0:"), "{}", passwd.text);
        assert!(passwd.text.contains("nobody:x:65534:65534:"));
        assert!(passwd.text.ends_with("app:x:1000:1000::/home/app:/sbin/nologin\n"));
        assert_eq!(users.files[1].text, "root:x:0:\nnobody:x:65534:\napp:x:1000:\n");
        assert_eq!(users.owner("app"), Ok((1000, 1000)));
        assert_eq!(users.owner("app:root"), Ok((1000, 0)));
        assert_eq!(users.owner("nobody"), Ok((65534, 65534)));
        assert_eq!(users.owner("5"), Ok((5, 5)));
        assert!(users.owner("www").unwrap_err().contains("has no user www (it has root, nobody, app)"));
        assert!(users.owner("app:staff").unwrap_err().contains("no group staff"));

        let staff =
            Users::plan(Some("app:staff"), Ids { uid: 1001, gid: 50 }, &BaseFiles::default()).unwrap();
        assert_eq!(staff.run_as, Some((1001, 50)));
        assert!(staff.files[1].text.ends_with("staff:x:50:\n"));
        assert!(staff.files[0].text.contains("app:x:1001:50:"));
    }

    #[test]
    fn numeric_users_need_no_files() {
        let users = Users::plan(Some("1000:100"), IDS, &BaseFiles::default()).unwrap();
        assert_eq!((users.run_as, users.files.len(), users.home), (Some((1000, 100)), 0, None));
        let alone = Users::plan(Some("1234"), IDS, &BaseFiles::default()).unwrap();
        assert_eq!(alone.run_as, Some((1234, 0)), "gid 0 without a passwd entry, as Docker does");
        assert_eq!(Users::plan(None, IDS, &BaseFiles::default()).unwrap().run_as, None);
    }

    #[test]
    fn a_base_images_users_are_kept_and_its_ids_respected() {
        let base = BaseFiles {
            passwd: Some("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin".into()),
            group: Some("root:x:0:\nnonroot:x:65532:\n".into()),
        };
        let existing = Users::plan(Some("nonroot"), IDS, &base).unwrap();
        assert_eq!((existing.run_as, existing.files.len()), (Some((65532, 65532)), 0), "nothing to add");
        let added = Users::plan(Some("app"), IDS, &base).unwrap();
        assert!(added.files[0].text.starts_with("root:x:0:0:root:/root:/sbin/nologin\nnonroot:"));
        assert!(added.files[0].text.ends_with("\napp:x:1000:1000::/home/app:/sbin/nologin\n"));
        let clash = Users::plan(Some("app"), Ids { uid: 65532, gid: 7 }, &base).unwrap_err();
        assert!(clash.contains("uid 65532 is nonroot's") && clash.contains("NIX_USER_UID"), "{clash}");
        let clash = Users::plan(Some("app"), Ids { uid: 7, gid: 65532 }, &base).unwrap_err();
        assert!(clash.contains("gid 65532 is group nonroot's"), "{clash}");
    }
}
