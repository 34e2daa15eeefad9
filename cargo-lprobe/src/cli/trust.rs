//! What the CLI trusts before it reads a process list or sends a request.
//!
//! A *socket directory* is trusted when it is a directory owned by the user running `lprobe`,
//! by root, or by the user its name says (`/tmp/lprobe-<uid>`, another user's directory shared
//! with one of our groups through `LPROBE_ALLOW_GROUP`), and when nobody else can put a file
//! in it (not writable by group or others, unless the sticky bit keeps them from replacing
//! ours). Anyone could otherwise plant sockets there that answer with a fake process list, or
//! receive the probes we arm. A *peer* (the process serving a socket, as the kernel reports
//! it) is trusted when it runs as us, as root, or as the owner of the trusted directory the
//! socket is in. Root trusts every directory's owner: root may arm any user's program.

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

/// The effective uid `lprobe` runs as (the one the runtime's peer check sees).
pub fn my_uid() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The groups `lprobe` runs with: the effective gid and the supplementary groups.
pub fn my_groups() -> Vec<u32> {
    let mut gids: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(|g| g.as_raw())
        .collect();
    gids.push(nix::unistd::getegid().as_raw());
    gids
}

/// A directory's owner, group and mode, as read from the file system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirInfo {
    /// Whether it is a directory (a symbolic link is not).
    pub is_dir: bool,
    /// Owner uid.
    pub owner: u32,
    /// Group gid.
    pub gid: u32,
    /// Permission bits, sticky bit included.
    pub mode: u32,
}

impl DirInfo {
    /// Reads `dir` without following a symbolic link.
    pub fn read(dir: &Path) -> std::io::Result<DirInfo> {
        let m = std::fs::symlink_metadata(dir)?;
        Ok(DirInfo {
            is_dir: m.is_dir(),
            owner: m.uid(),
            gid: m.gid(),
            mode: m.mode() & 0o7777,
        })
    }
}

/// The uid a socket directory's name gives: `N` for `lprobe-N`.
pub fn named_uid(dir: &Path) -> Option<u32> {
    dir.file_name()?
        .to_str()?
        .strip_prefix("lprobe-")?
        .parse()
        .ok()
}

/// Whether `dir` (described by `info`) may hold sockets `lprobe` running as `me` talks to;
/// the error says why not and what to do.
pub fn check_dir(dir: &Path, info: &DirInfo, me: u32) -> Result<(), String> {
    let shown = dir.display();
    if !info.is_dir {
        return Err(format!(
            "socket directory {shown} is not a directory (a symbolic link or a file); not trusted"
        ));
    }
    let owner = info.owner;
    if owner != me && owner != 0 && me != 0 && named_uid(dir) != Some(owner) {
        return Err(format!(
            "socket directory {shown} is owned by uid {owner}, not by you (uid {me}) or root: \
             its sockets could answer for processes that are not yours; not trusted (remove it, \
             or point LPROBE_SOCKET at a socket in a directory of yours)"
        ));
    }
    if info.mode & 0o022 != 0 && info.mode & 0o1000 == 0 {
        return Err(format!(
            "socket directory {shown} is writable by {} without the sticky bit: anyone could \
             replace a socket in it; not trusted (chmod go-w {shown})",
            if info.mode & 0o002 != 0 {
                "every user"
            } else {
                "its group"
            }
        ));
    }
    Ok(())
}

/// Whether the process serving a socket, running as `peer`, may be believed by `lprobe`
/// running as `me`, the socket being in a trusted directory owned by `dir_owner`.
pub fn check_peer(socket: &Path, peer: u32, me: u32, dir_owner: u32) -> Result<(), String> {
    if peer == me || peer == 0 || peer == dir_owner {
        return Ok(());
    }
    Err(format!(
        "{} is served by uid {peer}, neither you (uid {me}), root, nor the owner of its \
         directory (uid {dir_owner}): not talking to it",
        socket.display()
    ))
}

/// The directory a socket path is in (`.` for a bare name).
fn parent(socket: &Path) -> PathBuf {
    match socket.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Checks, on a fresh connection and before anything is sent, that the socket's directory
/// is trusted and that the process serving it may be believed.
pub fn verify(stream: &UnixStream, socket: &Path) -> Result<()> {
    let me = my_uid();
    let dir = parent(socket);
    let info = match DirInfo::read(&dir) {
        Ok(i) => i,
        Err(e) => bail!("cannot inspect socket directory {}: {e}", dir.display()),
    };
    if let Err(why) = check_dir(&dir, &info, me) {
        bail!(why);
    }
    let creds = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot read who serves {}: {e}; not talking to it",
                socket.display()
            )
        })?;
    if let Err(why) = check_peer(socket, creds.uid(), me, info.owner) {
        bail!(why);
    }
    Ok(())
}

/// Other users' socket directories shared with us: `/tmp/lprobe-<uid>` owned by that uid, of
/// one of `groups`, readable and searchable by the group (a program run with
/// `LPROBE_ALLOW_GROUP` makes its directory so).
pub fn shared_dirs(me: u32, groups: &[u32]) -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir("/tmp") else {
        return Vec::new();
    };
    let mut dirs: Vec<PathBuf> = rd
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let Some(uid) = named_uid(p) else {
                return false;
            };
            uid != me
                && DirInfo::read(p).is_ok_and(|i| {
                    i.is_dir && i.owner == uid && groups.contains(&i.gid) && i.mode & 0o050 == 0o050
                })
        })
        .collect();
    dirs.sort();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(owner: u32, mode: u32) -> DirInfo {
        DirInfo {
            is_dir: true,
            owner,
            gid: 0,
            mode,
        }
    }

    #[test]
    fn a_socket_directory_is_trusted_only_from_its_owner_and_when_nobody_else_writes_it() {
        let mine = Path::new("/run/user/1000/lprobe");
        assert_eq!(check_dir(mine, &info(1000, 0o700), 1000), Ok(()));
        assert_eq!(check_dir(mine, &info(0, 0o755), 1000), Ok(()), "root's");
        let e = check_dir(mine, &info(1001, 0o700), 1000).expect_err("another user's");
        assert!(
            e.contains("owned by uid 1001") && e.contains("not trusted"),
            "{e}"
        );
        // Another user's directory by its name: shared through a group.
        let theirs = Path::new("/tmp/lprobe-1001");
        assert_eq!(check_dir(theirs, &info(1001, 0o750), 1000), Ok(()));
        let e = check_dir(theirs, &info(1002, 0o750), 1000).expect_err("not the named user");
        assert!(e.contains("owned by uid 1002"), "{e}");
        // Root trusts any owner.
        assert_eq!(check_dir(mine, &info(1001, 0o700), 0), Ok(()));
        let e = check_dir(mine, &info(1000, 0o777), 1000).expect_err("world-writable");
        assert!(e.contains("every user") && e.contains("chmod go-w"), "{e}");
        let e = check_dir(mine, &info(1000, 0o770), 1000).expect_err("group-writable");
        assert!(e.contains("its group"), "{e}");
        assert_eq!(
            check_dir(Path::new("/tmp"), &info(0, 0o1777), 1000),
            Ok(()),
            "sticky"
        );
        let link = DirInfo {
            is_dir: false,
            ..info(1000, 0o777)
        };
        assert!(check_dir(mine, &link, 1000).is_err());
    }

    #[test]
    fn a_peer_is_believed_when_it_is_us_root_or_the_directorys_owner() {
        let s = Path::new("/tmp/x/1.sock");
        assert!(check_peer(s, 1000, 1000, 1000).is_ok());
        assert!(check_peer(s, 0, 1000, 1000).is_ok());
        assert!(
            check_peer(s, 1001, 1000, 1001).is_ok(),
            "a shared directory"
        );
        let e = check_peer(s, 1001, 1000, 0).expect_err("a stranger in /tmp");
        assert!(e.contains("served by uid 1001"), "{e}");
    }

    #[test]
    fn named_uids_come_from_lprobe_dash_numbers_only() {
        assert_eq!(named_uid(Path::new("/tmp/lprobe-42")), Some(42));
        assert_eq!(named_uid(Path::new("/tmp/lprobe-fuzz-42")), None);
        assert_eq!(named_uid(Path::new("/run/user/42/lprobe")), None);
    }

    #[test]
    fn a_connection_to_our_own_socket_in_a_private_directory_is_verified() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("1.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let s = UnixStream::connect(&sock).expect("connect");
        verify(&s, &sock).expect("ours");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))
            .expect("chmod");
        let e = verify(&s, &sock).expect_err("world-writable directory");
        assert!(format!("{e}").contains("not trusted"), "{e}");
    }
}
