//! Who runs what: the mail user and Dovecot's internal/login users, read from `/etc/passwd`
//! and `/etc/group` (std has no getpwnam, and this crate takes no libc dependency).

use std::io;

/// A system account.
pub(crate) struct Account {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
}

fn passwd() -> Vec<Account> {
    let text = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            Some(Account {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

pub(crate) fn by_name(name: &str) -> Option<Account> {
    passwd().into_iter().find(|a| a.name == name)
}

pub(crate) fn by_uid(uid: u32) -> Option<Account> {
    passwd().into_iter().find(|a| a.uid == uid)
}

pub(crate) fn group_name(gid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/group").ok()?;
    text.lines().find_map(|line| {
        let f: Vec<&str> = line.split(':').collect();
        (f.get(2)?.parse::<u32>().ok()? == gid).then(|| f[0].to_string())
    })
}

/// The accounts an instance runs with, given the uid/gid this process creates files as.
pub(crate) struct Roles {
    pub mail: Account,
    /// Config lines naming the internal and login users.
    pub config: String,
}

pub(crate) fn roles(euid: u32, egid: u32) -> io::Result<Roles> {
    if euid == 0 {
        let mail = by_name("nobody")
            .or_else(|| by_name("dovenull"))
            .ok_or_else(|| io::Error::other("no unprivileged account (nobody, dovenull)"))?;
        let internal = by_name("dovecot").map_or_else(|| mail.name.clone(), |a| a.name);
        let login = by_name("dovenull").map_or_else(|| mail.name.clone(), |a| a.name);
        let group = by_name("dovecot")
            .and_then(|a| group_name(a.gid))
            .or_else(|| group_name(mail.gid))
            .unwrap_or_else(|| "nogroup".into());
        let config = format!(
            "default_internal_user = {internal}\ndefault_login_user = {login}\n\
             default_internal_group = {group}\n"
        );
        return Ok(Roles { mail, config });
    }
    let me = by_uid(euid).ok_or_else(|| {
        io::Error::other(format!(
            "uid {euid} has no /etc/passwd entry; Dovecot needs a user name for it"
        ))
    })?;
    let group = group_name(egid).ok_or_else(|| {
        io::Error::other(format!(
            "gid {egid} has no /etc/group entry; Dovecot needs it"
        ))
    })?;
    let config = format!(
        "default_internal_user = {0}\ndefault_login_user = {0}\n\
         default_internal_group = {group}\n",
        me.name
    );
    Ok(Roles {
        mail: Account {
            name: me.name,
            uid: euid,
            gid: egid,
        },
        config,
    })
}
