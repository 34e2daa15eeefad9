//! Who may talk to the control socket, and where it lives with which owner and mode.
//!
//! An *armer* is a peer of the socket the runtime answers: the program's own user, root, and,
//! when `LPROBE_ALLOW_GROUP` names a group, that group's members (by primary or supplementary
//! group, as the kernel reports them for the connecting process). Everyone else gets one error
//! line. The file system agrees with that check: the socket directory is 0700 (0750 and the
//! allowed group's with a group), the socket 0600 (0660 and the group's), so nobody outside
//! the group can even reach the socket; the peer check is the second wall, the one that holds
//! when someone loosens the modes.

use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The variable naming the group whose members may arm (a name or a numeric gid).
pub(crate) const GROUP_ENV: &str = "LPROBE_ALLOW_GROUP";

extern "C" {
    fn getuid() -> u32;
}

/// The program's real uid.
pub(crate) fn my_uid() -> u32 {
    // SAFETY: getuid has no preconditions and cannot fail.
    unsafe { getuid() }
}

/// The peer of a connection, as the kernel saw it when it connected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Peer {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups (Linux, `SO_PEERGROUPS`; empty elsewhere or when not asked).
    pub groups: Vec<u32>,
}

/// Whether `peer` may use the socket of a program running as `me`, with `group` the gid
/// `LPROBE_ALLOW_GROUP` resolved to (if any): the same uid, root, or a member of the group.
pub(crate) fn may_arm(peer: &Peer, me: u32, group: Option<u32>) -> bool {
    peer.uid == me
        || peer.uid == 0
        || group.is_some_and(|g| peer.gid == g || peer.groups.contains(&g))
}

/// The message a refused peer gets.
pub(crate) fn refusal(group: Option<u32>) -> String {
    match group {
        Some(g) => format!(
            "permission denied: the peer is neither this process's user, root, nor a member of group {g} ({GROUP_ENV})"
        ),
        None => "permission denied: the peer is neither this process's user nor root (set LPROBE_ALLOW_GROUP in the program's environment to let a group arm)".to_owned(),
    }
}

/// `LPROBE_ALLOW_GROUP` resolved once: `Ok(None)` when unset, the gid, or why the value is
/// refused (then nobody is let in by group: it fails closed).
pub(crate) fn allowed_group() -> &'static Result<Option<u32>, String> {
    static GROUP: OnceLock<Result<Option<u32>, String>> = OnceLock::new();
    GROUP.get_or_init(|| match std::env::var(GROUP_ENV) {
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{GROUP_ENV} is not UTF-8")),
        Ok(v) if v.is_empty() => Ok(None),
        Ok(v) => resolve_group(&v).map(Some),
    })
}

/// The gid `LPROBE_ALLOW_GROUP` names, once resolved; `None` when unset or refused.
pub(crate) fn group() -> Option<u32> {
    allowed_group().as_ref().ok().copied().flatten()
}

/// A group name or numeric gid to a gid (names through the C library's `getgrnam_r`, which
/// reads `/etc/group`, NSS included).
pub(crate) fn resolve_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    if name.contains('\0') || name.len() > 256 {
        return Err(format!("{GROUP_ENV}='{name}' is not a group name"));
    }
    #[repr(C)]
    struct Group {
        name: *mut u8,
        passwd: *mut u8,
        gid: u32,
        members: *mut *mut u8,
    }
    extern "C" {
        fn getgrnam_r(
            name: *const u8,
            grp: *mut Group,
            buf: *mut u8,
            len: usize,
            result: *mut *mut Group,
        ) -> i32;
    }
    let mut cname = name.as_bytes().to_vec();
    cname.push(0);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let mut grp = Group {
            name: std::ptr::null_mut(),
            passwd: std::ptr::null_mut(),
            gid: 0,
            members: std::ptr::null_mut(),
        };
        let mut found: *mut Group = std::ptr::null_mut();
        // SAFETY: `cname` is NUL-terminated, `grp` and `found` are valid for writes, and `buf`
        // is valid for `buf.len()` bytes; the result points into `grp` or is null.
        let rc = unsafe {
            getgrnam_r(
                cname.as_ptr(),
                &mut grp,
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        const ERANGE: i32 = 34;
        if rc == ERANGE && buf.len() < 1 << 20 {
            buf.resize(buf.len() * 4, 0);
            continue;
        }
        if rc == 0 && !found.is_null() {
            return Ok(grp.gid);
        }
        return Err(format!(
            "{GROUP_ENV}='{name}': no such group (give a group name from /etc/group or a numeric gid)"
        ));
    }
}

/// The peer's credentials: uid and gid, and with `groups` its supplementary groups too.
#[cfg(target_os = "linux")]
pub(crate) fn peer(s: &UnixStream, groups: bool) -> Option<Peer> {
    #[repr(C)]
    struct Ucred {
        pid: i32,
        uid: u32,
        gid: u32,
    }
    extern "C" {
        fn getsockopt(fd: i32, level: i32, name: i32, val: *mut u8, len: *mut u32) -> i32;
    }
    const SOL_SOCKET: i32 = 1;
    const SO_PEERCRED: i32 = 17;
    const SO_PEERGROUPS: i32 = 59;
    let mut cred = Ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<Ucred>() as u32;
    let fd = s.as_raw_fd();
    // SAFETY: `cred` and `len` are valid for writes and `len` holds `cred`'s size.
    let rc = unsafe {
        getsockopt(
            fd,
            SOL_SOCKET,
            SO_PEERCRED,
            (&mut cred as *mut Ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    let mut peer = Peer {
        uid: cred.uid,
        gid: cred.gid,
        groups: Vec::new(),
    };
    if groups {
        // NGROUPS_MAX is 65536; ask with room for 64 first, then for what the kernel says.
        let mut gids = vec![0u32; 64];
        for _ in 0..2 {
            let mut len = (gids.len() * 4) as u32;
            // SAFETY: `gids` is valid for `len` bytes of writes.
            let rc = unsafe {
                getsockopt(
                    fd,
                    SOL_SOCKET,
                    SO_PEERGROUPS,
                    gids.as_mut_ptr().cast(),
                    &mut len,
                )
            };
            let n = len as usize / 4;
            if rc == 0 {
                gids.truncate(n);
                peer.groups = gids;
                break;
            }
            if n <= gids.len() || n > 65536 {
                break;
            }
            gids.resize(n, 0);
        }
    }
    Some(peer)
}

/// The peer's credentials (`getpeereid`: its uid and effective gid; no supplementary groups).
#[cfg(not(target_os = "linux"))]
pub(crate) fn peer(s: &UnixStream, _groups: bool) -> Option<Peer> {
    extern "C" {
        fn getpeereid(fd: i32, uid: *mut u32, gid: *mut u32) -> i32;
    }
    let (mut uid, mut gid) = (u32::MAX, u32::MAX);
    // SAFETY: both pointers are valid for writes.
    let rc = unsafe { getpeereid(s.as_raw_fd(), &mut uid, &mut gid) };
    (rc == 0).then_some(Peer {
        uid,
        gid,
        groups: Vec::new(),
    })
}

/// Whether the connection's peer may arm; reads its supplementary groups only when a group
/// is allowed and uid and primary group did not settle it.
pub(crate) fn peer_allowed(s: &UnixStream) -> bool {
    let me = my_uid();
    let group = group();
    let Some(p) = peer(s, false) else {
        return false;
    };
    if may_arm(&p, me, group) {
        return true;
    }
    group.is_some() && peer(s, true).is_some_and(|p| may_arm(&p, me, group))
}

/// The socket path: `$LPROBE_SOCKET`, else `$XDG_RUNTIME_DIR/lprobe/<pid>.sock`, else
/// `/tmp/lprobe-<uid>/<pid>.sock`. With a group allowed, the socket goes to
/// `/tmp/lprobe-<uid>/` even when `XDG_RUNTIME_DIR` is set: that directory is the user's
/// alone (0700), so no group member could reach a socket inside it.
pub(crate) fn socket_path() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("LPROBE_SOCKET").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let uid = my_uid();
    let group = group();
    let dir = match std::env::var_os("XDG_RUNTIME_DIR").filter(|p| !p.is_empty()) {
        Some(d) if group.is_none() => PathBuf::from(d).join("lprobe"),
        _ => PathBuf::from(format!("/tmp/lprobe-{uid}")),
    };
    prepare_dir(&dir, uid, group)?;
    Ok(dir.join(format!("{}.sock", std::process::id())))
}

/// The mode a socket directory should have: the user's alone, or listable by the group.
pub(crate) fn dir_mode(group: Option<u32>) -> u32 {
    if group.is_some() {
        0o750
    } else {
        0o700
    }
}

/// Creates the socket directory (0700) if missing, refuses one that is not a directory
/// owned by `uid` (someone else may have created it in `/tmp`), and sets its mode and group:
/// 0700, or 0750 and `group`'s when one is allowed (a looser mode is tightened).
fn prepare_dir(dir: &Path, uid: u32, group: Option<u32>) -> Result<(), String> {
    if let Err(e) = std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        return Err(format!(
            "cannot create socket directory {}: {e}",
            dir.display()
        ));
    }
    let meta = std::fs::symlink_metadata(dir)
        .map_err(|e| format!("cannot inspect socket directory {}: {e}", dir.display()))?;
    if !meta.is_dir() || meta.uid() != uid {
        return Err(format!(
            "socket directory {} is not a directory owned by uid {uid}; not serving the control socket",
            dir.display()
        ));
    }
    if let Some(g) = group {
        if meta.gid() != g {
            std::os::unix::fs::lchown(dir, None, Some(g)).map_err(|e| {
                format!(
                    "cannot give group {g} ({GROUP_ENV}) the socket directory {}: {e}; the program's user must be a member of the group",
                    dir.display()
                )
            })?;
        }
    }
    let want = dir_mode(group);
    if meta.mode() & 0o7777 != want {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(want))
            .map_err(|e| format!("cannot set the mode of {}: {e}", dir.display()))?;
    }
    Ok(())
}

/// Gives a freshly bound socket its mode (0600, or 0660 and the allowed group's).
pub(crate) fn restrict_socket(path: &Path) -> Result<(), String> {
    let group = group();
    if let Some(g) = group {
        std::os::unix::fs::lchown(path, None, Some(g)).map_err(|e| {
            format!(
                "cannot give group {g} ({GROUP_ENV}) the socket {}: {e}",
                path.display()
            )
        })?;
    }
    let mode = if group.is_some() { 0o660 } else { 0o600 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("cannot set the mode of {}: {e}", path.display()))
}

/// The inode of this process's pid namespace (`/proc/self/ns/pid`), which `hello` reports:
/// the pid in a socket's name is the process's in its own namespace, so a client in another
/// namespace cannot tell from it whether the process lives.
pub(crate) fn pid_namespace() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/pid").ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(uid: u32, gid: u32, groups: &[u32]) -> Peer {
        Peer {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn the_same_uid_root_and_members_of_the_allowed_group_may_arm() {
        let me = 1000;
        assert!(may_arm(&peer(1000, 1000, &[]), me, None));
        assert!(may_arm(&peer(0, 0, &[]), me, None));
        assert!(!may_arm(&peer(1001, 50, &[50]), me, None), "no group set");
        assert!(may_arm(&peer(1001, 50, &[]), me, Some(50)), "primary group");
        assert!(
            may_arm(&peer(1001, 1001, &[7, 50]), me, Some(50)),
            "supplementary group"
        );
        assert!(!may_arm(&peer(1001, 1001, &[7]), me, Some(50)));
        assert!(refusal(Some(50)).contains("group 50"));
        assert!(refusal(None).contains("LPROBE_ALLOW_GROUP"));
    }

    #[test]
    fn a_group_is_a_gid_or_a_name_and_an_unknown_name_is_refused() {
        assert_eq!(resolve_group("4242"), Ok(4242));
        // Every Unix has a group 0 named root (Linux) or wheel (BSD, macOS).
        let zero = resolve_group("root").or_else(|_| resolve_group("wheel"));
        assert_eq!(zero, Ok(0));
        let e = resolve_group("no-such-group-lprobe").expect_err("unknown");
        assert!(e.contains("no such group"), "{e}");
        assert!(resolve_group("a\0b").is_err());
    }

    #[test]
    fn a_connection_from_this_process_is_its_own_user() {
        let (a, _b) = UnixStream::pair().expect("pair");
        let p = super::peer(&a, true).expect("credentials");
        assert_eq!(p.uid, my_uid());
        assert!(peer_allowed(&a));
    }

    #[test]
    fn the_socket_directory_gets_the_groups_mode_and_is_refused_when_someone_else_owns_it() {
        let dir = std::env::temp_dir().join(format!("lprobe-access-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let me = my_uid();
        let gid = std::fs::metadata("/proc/self")
            .map(|m| m.gid())
            .unwrap_or(0);
        prepare_dir(&dir, me, None).expect("private");
        let m = std::fs::metadata(&dir).expect("meta");
        assert_eq!(m.mode() & 0o7777, 0o700);
        prepare_dir(&dir, me, Some(gid)).expect("shared");
        let m = std::fs::metadata(&dir).expect("meta");
        assert_eq!((m.mode() & 0o7777, m.gid()), (0o750, gid));
        // Back to private: the group's bits are taken away again.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        prepare_dir(&dir, me, None).expect("private again");
        assert_eq!(
            std::fs::metadata(&dir).expect("meta").mode() & 0o7777,
            0o700
        );
        let e = prepare_dir(&dir, me.wrapping_add(1), None).expect_err("not ours");
        assert!(e.contains("not a directory owned by uid"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
