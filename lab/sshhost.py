"""The lab as a production trading host reached over real SSH (called by `labctl up`).

Production: the compose project belongs to `qt` (in the `docker` group), `.env` is 0600 `qt`; a
separate on-call account logs in with a key and becomes `qt` with sudo. The lab sets this
machine up the same way, around the SAME containers and project directory that the local
inventory (inventory/lab.yml, root) drives:

* users `qt` (group docker) and `oncall` (not in docker; `sudo -u qt` without a password, no root);
* the project dir (RUN_DIR) chowned to qt, `.env`/`sim.env` 0600 qt; qt gets search-only ACLs (u:qt:x)
  on the ancestors that would stop it (a checkout under /root), nothing else;
* the compose v2 plugin linked into ~qt/.docker/cli-plugins (the one root uses);
* an sshd (Debian openssh-server) on 127.0.0.1:SSH_PORT with its own host key, pinned in
  lab/run/ssh/known_hosts; the on-call key lab/run/ssh/id_oncall (both named by inventory/lab-ssh.yml).

Idempotent and fast when nothing changed (stat calls, one `runuser` check): every step compares
first and changes only what differs; the end-to-end check over SSH runs only after a change.
Stdlib only, like labctl. Installing the packages is scripts/ensure_sshhost.sh's job (`make system`).

Nothing here runs id(1) (it may be a broken stub; os.geteuid() and pwd/grp say the same), and the
system tools that live in sbin (useradd, usermod, runuser, visudo, sshd) are found there even when
the calling root shell's PATH lacks it.
"""
import grp
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSH_PORT = 12222
SSH_ADDRESS = "127.0.0.1"
QT_USER, ONCALL_USER = "qt", "oncall"
DOCKER_GROUP = "docker"
SUDOERS_FILE = Path("/etc/sudoers.d/qt-lab-oncall")
SUDOERS = f"""\
# qt-runbooks lab (lab/sshhost.py): the on-call account runs Ansible as {QT_USER}, never as root.
Defaults:{ONCALL_USER} !requiretty
{ONCALL_USER} ALL=({QT_USER}) NOPASSWD: ALL
"""
TOOLS = {"/usr/sbin/sshd": "openssh-server", "/usr/bin/sudo": "sudo", "/usr/bin/setfacl": "acl",
         "/usr/bin/ssh-keygen": "openssh-client", "/usr/bin/ssh": "openssh-client"}
# Called by name, found on PATH plus the sbin directories (a root shell's PATH may lack them): the
# Debian package each comes from.
SYSTEM_TOOLS = {"useradd": "passwd", "usermod": "passwd", "gpasswd": "passwd", "runuser": "util-linux",
                "visudo": "sudo", "setfacl": "acl", "ssh-keygen": "openssh-client", "ssh": "openssh-client"}
SBIN_DIRS = ("/usr/local/sbin", "/usr/sbin", "/sbin")
PLUGIN_DIRS = ("/usr/local/lib/docker/cli-plugins", "/usr/local/libexec/docker/cli-plugins",
               "/usr/lib/docker/cli-plugins", "/usr/libexec/docker/cli-plugins")


class SshHostError(Exception):
    """One clear line for the user."""


def _path():
    """PATH with the sbin directories appended where missing (useradd, runuser, visudo, sshd live there)."""
    parts = [p for p in os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(os.pathsep) if p]
    return os.pathsep.join(parts + [d for d in SBIN_DIRS if d not in parts])


def _tool(name):
    """The absolute path of a system tool (PATH, then sbin), or None."""
    return name if os.path.isabs(name) else shutil.which(name, path=_path())


def _run(cmd, check=True, timeout=60, **kw):
    exe = _tool(cmd[0])
    if not exe:
        raise SshHostError(f"{cmd[0]} not found (PATH and {', '.join(SBIN_DIRS)}): install the Debian package "
                           f"{SYSTEM_TOOLS.get(cmd[0], cmd[0])}")
    env = dict(os.environ, PATH=_path())  # the tools' own children (sshd, useradd's helpers) find sbin too
    try:
        res = subprocess.run([exe, *cmd[1:]], capture_output=True, text=True, timeout=timeout, env=env, check=False,
                             **kw)
    except OSError as err:
        raise SshHostError(f"{exe} could not run: {err}") from None
    except subprocess.TimeoutExpired:
        raise SshHostError(f"{' '.join(cmd[:4])} did not finish within {timeout}s") from None
    if check and res.returncode:
        raise SshHostError(f"{' '.join(cmd[:4])} failed (rc={res.returncode}): {res.stderr.strip()[-300:]}")
    return res


def _as_user(user, *cmd, check=False, timeout=30):
    """Run `cmd` as `user` with that user's groups (runuser: root only)."""
    return _run(["runuser", "-u", user, "--", *cmd], check=check, timeout=timeout)


class Host:
    def __init__(self, run_dir, log):
        self.run_dir = Path(run_dir).absolute()
        self.ssh_dir = self.run_dir.parent / "ssh"
        self.log = log
        self.changed = []
        self.verify = False

    # ------------------------------------------------------------ helpers
    def _change(self, what, verify=True):
        """Record a change (root only); `verify=False` for ownership fixes that need no SSH round trip."""
        if os.geteuid() != 0:
            raise SshHostError(f"the SSH host needs a change ({what}) that only root can make: run labctl up as root")
        self.changed.append(what)
        self.verify = self.verify or verify

    def _write(self, path, text, mode, owner=None):
        """Write `text` if it differs; set mode and owner. True when anything changed."""
        path = Path(path)
        uid, gid = (pwd.getpwnam(owner).pw_uid, pwd.getpwnam(owner).pw_gid) if owner else (0, 0)
        try:
            st = path.stat()
            same = path.read_text() == text and (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (mode, uid, gid)
        except OSError:
            same = False
        if same:
            return False
        self._change(f"write {path}")
        tmp = path.with_name(f".{path.name}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
        return True

    # ------------------------------------------------------------ steps
    def check_tools(self):
        missing = sorted({pkg for tool, pkg in TOOLS.items() if not os.access(tool, os.X_OK)}
                         | {pkg for tool, pkg in SYSTEM_TOOLS.items() if not _tool(tool)})
        if missing:
            raise SshHostError(f"the lab's SSH host needs the Debian packages {' '.join(missing)}: "
                               "run `make system` (scripts/ensure_sshhost.sh) as root")
        try:
            grp.getgrnam(DOCKER_GROUP)
        except KeyError:
            raise SshHostError(f"no `{DOCKER_GROUP}` group: the Docker engine's socket must belong to it "
                               "(Debian's docker.io creates it)") from None

    def users(self):
        for user, groups in ((QT_USER, [DOCKER_GROUP]), (ONCALL_USER, [])):
            try:
                pwd.getpwnam(user)
            except KeyError:
                self._change(f"create user {user}")
                _run(["useradd", "--create-home", "--shell", "/bin/bash", "--user-group",
                      *(["--groups", ",".join(groups)] if groups else []), user])
                # Key-only account: '*' is no password and not "locked" (sshd refuses locked accounts).
                _run(["usermod", "--password", "*", user])
            in_docker = user in grp.getgrnam(DOCKER_GROUP).gr_mem
            if DOCKER_GROUP in groups and not in_docker:
                self._change(f"add {user} to {DOCKER_GROUP}")
                _run(["usermod", "--append", "--groups", DOCKER_GROUP, user])
            elif DOCKER_GROUP not in groups and in_docker:
                self._change(f"remove {user} from {DOCKER_GROUP}")
                _run(["gpasswd", "--delete", user, DOCKER_GROUP])

    def reachable_by_qt(self, path):
        """qt can reach `path`: grant search-only ACLs (u:qt:x) on the ancestors that stop it."""
        path = Path(path)
        if _as_user(QT_USER, "test", "-e", str(path)).returncode == 0:
            return
        for parent in reversed([*path.parents][:-1]):  # /a, /a/b, ... (not / itself)
            if _as_user(QT_USER, "test", "-x", str(parent)).returncode:
                self._change(f"search ACL for {QT_USER} on {parent}")
                self.log(f"ssh host: {QT_USER} cannot traverse {parent}: "
                         f"granting search only (setfacl -m u:{QT_USER}:x)")
                _run(["setfacl", "-m", f"u:{QT_USER}:x", str(parent)])
        if _as_user(QT_USER, "test", "-e", str(path)).returncode:
            raise SshHostError(f"{QT_USER} cannot reach {path} even with search ACLs on its parents "
                               "(set LAB_RUN_DIR to a directory outside it)")

    def project_owner(self):
        """The compose project belongs to qt; .env and sim.env are 0600."""
        if not (self.run_dir / "docker-compose.yml").exists():
            raise SshHostError(f"no compose project in {self.run_dir}: run labctl up")
        self.reachable_by_qt(self.run_dir / "docker-compose.yml")
        wrong = not_qts(self.run_dir)
        if wrong:
            # Root-run labctl and playbooks create root-owned files here (the policy file, backups).
            self._change(f"chown {len(wrong)} path(s) in {self.run_dir} to {QT_USER}", verify=False)
            give_back(self.run_dir, wrong)
        for secret in (".env", "sim.env"):
            p = self.run_dir / secret
            if p.exists() and p.stat().st_mode & 0o7777 != 0o600:
                self._change(f"chmod 600 {p}", verify=False)
                p.chmod(0o600)

    def compose_plugin(self):
        """`docker compose` for qt: the plugin root uses, linked into ~qt/.docker/cli-plugins."""
        if any(Path(d, "docker-compose").exists() for d in PLUGIN_DIRS):
            return  # a system-wide plugin serves every user
        mine = Path.home() / ".docker" / "cli-plugins" / "docker-compose"
        if not mine.exists():
            raise SshHostError(f"no compose plugin at {mine} to link for {QT_USER}: run `make venv`")
        target = mine.resolve()
        qt = pwd.getpwnam(QT_USER)
        link = Path(qt.pw_dir, ".docker", "cli-plugins", "docker-compose")
        if link.is_symlink() and Path(os.readlink(link)) == target:
            return
        if link.exists() and not link.is_symlink():
            return  # a plugin qt installed as a file: keep it (as scripts/link_compose.sh does)
        self._change(f"link {link} -> {target}")
        for d in (link.parent.parent, link.parent):
            d.mkdir(mode=0o755, exist_ok=True)
            os.chown(d, qt.pw_uid, qt.pw_gid)
        tmp = link.with_name(".docker-compose.tmp")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        tmp.symlink_to(target)
        os.lchown(tmp, qt.pw_uid, qt.pw_gid)
        os.replace(tmp, link)
        self.reachable_by_qt(target)

    def keys(self):
        """The on-call key pair and the lab sshd's host key (lab/run/ssh, root only)."""
        if not self.ssh_dir.is_dir():
            self._change(f"create {self.ssh_dir}")
            self.ssh_dir.mkdir(mode=0o700, parents=True)
        for name, comment in (("id_oncall", f"{ONCALL_USER}@qt-lab"), ("ssh_host_ed25519_key", "qt-lab-host")):
            key = self.ssh_dir / name
            if not (key.exists() and key.with_suffix(".pub").exists()):
                self._change(f"generate {key}")
                for p in (key, key.with_suffix(".pub")):
                    p.unlink(missing_ok=True)
                _run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(key)])
        oncall = pwd.getpwnam(ONCALL_USER)
        ssh = Path(oncall.pw_dir, ".ssh")
        if not ssh.is_dir():
            self._change(f"create {ssh}")
            ssh.mkdir(mode=0o700)
            os.chown(ssh, oncall.pw_uid, oncall.pw_gid)
        self._write(ssh / "authorized_keys", (self.ssh_dir / "id_oncall.pub").read_text(), 0o600, ONCALL_USER)
        host_pub = " ".join((self.ssh_dir / "ssh_host_ed25519_key.pub").read_text().split()[:2])
        self._write(self.ssh_dir / "known_hosts", f"[{SSH_ADDRESS}]:{SSH_PORT} {host_pub}\n", 0o644)

    def sudoers(self):
        if SUDOERS_FILE.exists() and SUDOERS_FILE.read_text() == SUDOERS:
            return
        check = _run(["visudo", "-cqf", "-"], check=False, input=SUDOERS)
        if check.returncode:
            raise SshHostError(f"the lab's sudoers rule does not validate: {(check.stdout + check.stderr).strip()}")
        self._write(SUDOERS_FILE, SUDOERS, 0o440)

    def sshd_config(self):
        return "\n".join([
            "# The lab's trading host (lab/sshhost.py): key-only logins of the on-call account, loopback only.",
            f"Port {SSH_PORT}",
            f"ListenAddress {SSH_ADDRESS}",
            f"HostKey {self.ssh_dir / 'ssh_host_ed25519_key'}",
            f"PidFile {self.ssh_dir / 'sshd.pid'}",
            "AuthorizedKeysFile .ssh/authorized_keys",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin no",
            f"AllowUsers {ONCALL_USER}",
            "UsePAM yes",
            "X11Forwarding no",
            "AllowTcpForwarding no",
            "PrintMotd no",
            "Subsystem sftp internal-sftp",
            "",
        ])

    def _sshd_pid(self):
        try:
            pid = int((self.ssh_dir / "sshd.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        # sshd rewrites its command line: "sshd: /usr/sbin/sshd -f CONFIG [listener] ..."
        return pid if f"-f {self.ssh_dir / 'sshd_config'}".encode() in _cmdline(pid) else None

    def sshd(self):
        """sshd runs with this config and host key; restarted only when either changed."""
        config = self.ssh_dir / "sshd_config"
        wrote = self._write(config, self.sshd_config(), 0o600)
        stamp = hashlib.sha256(config.read_bytes()
                               + (self.ssh_dir / "ssh_host_ed25519_key.pub").read_bytes()).hexdigest()
        stamp_file = self.ssh_dir / "sshd.stamp"
        pid = self._sshd_pid()
        if pid and not wrote and stamp_file.exists() and stamp_file.read_text() == stamp and _port_open():
            return
        self._change("start sshd")
        # The port is fixed, like the lab's container names: a lab sshd of another checkout (its lab is gone or
        # taken over) would answer in place of ours, with another host key. Stop it as we stop ours.
        others = [other for other in _lab_sshds() if other != pid and f"-f {config}".encode() not in _cmdline(other)]
        _stop_pids([pid] + others if pid else others)
        for other in others:
            self.log(f"ssh host: stopped the lab sshd of another checkout (pid {other})")
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation directory
        test = _run(["/usr/sbin/sshd", "-t", "-f", str(config)], check=False)
        if test.returncode:
            raise SshHostError(f"sshd rejects {config}: {test.stderr.strip()[-300:]}")
        _run(["/usr/sbin/sshd", "-f", str(config)])  # daemonizes; outlives labctl
        for _dummy in range(50):
            if _port_open() and self._sshd_pid():  # ours (its pid file), not whatever else holds the port
                break
            time.sleep(0.1)
        else:
            raise SshHostError(f"sshd did not listen on {SSH_ADDRESS}:{SSH_PORT} (port taken by another process?)")
        stamp_file.write_text(stamp)
        self.log(f"ssh host: sshd listening on {SSH_ADDRESS}:{SSH_PORT}")

    def end_to_end(self):
        """oncall logs in with its key and the pinned host key, becomes qt and reaches Docker."""
        res = _run(["ssh", "-i", str(self.ssh_dir / "id_oncall"), "-p", str(SSH_PORT),
                    "-o", f"UserKnownHostsFile={self.ssh_dir / 'known_hosts'}", "-o", "BatchMode=yes",
                    "-o", "IdentitiesOnly=yes", f"{ONCALL_USER}@{SSH_ADDRESS}",
                    f"sudo -n -u {QT_USER} docker compose --project-directory {self.run_dir} ps -q"],
                   check=False, timeout=60)
        if res.returncode or not res.stdout.strip():
            raise SshHostError(f"ssh {ONCALL_USER}@{SSH_ADDRESS}:{SSH_PORT} -> sudo -u {QT_USER} docker compose ps "
                               f"failed (rc={res.returncode}): {res.stderr.strip()[-300:]}")

    def ensure(self):
        start = time.monotonic()
        self.check_tools()
        self.users()
        self.project_owner()
        self.compose_plugin()
        self.keys()
        self.sudoers()
        self.sshd()
        if self.verify:
            self.end_to_end()
            self.log(f"ssh host ready: ssh -p {SSH_PORT} {ONCALL_USER}@{SSH_ADDRESS} "
                     f"({len(self.changed)} change(s), {time.monotonic() - start:.1f}s)")
        return {"address": SSH_ADDRESS, "port": SSH_PORT, "user": ONCALL_USER, "become_user": QT_USER,
                "key": str(self.ssh_dir / "id_oncall"), "known_hosts": str(self.ssh_dir / "known_hosts"),
                "changed": self.changed}


def not_qts(run_dir):
    """Paths in the project that do not belong to qt."""
    qt = pwd.getpwnam(QT_USER)
    wrong = []
    for root, dirs, files in os.walk(run_dir):
        for name in [".", *dirs, *files]:
            p = os.path.join(root, name)
            st = os.lstat(p)
            if (st.st_uid, st.st_gid) != (qt.pw_uid, qt.pw_gid):
                wrong.append(p)
    return wrong


def give_back(run_dir, paths=None):
    """The project's files (or `paths`, from not_qts) back to qt. The lab is driven both as root
    (inventory/lab.yml, labctl, whose writes - the policy file, the fault state - are root's) and as qt
    (inventory/lab-ssh.yml); a production host has one owner. A no-op before the host is set up."""
    if os.geteuid() != 0:
        return
    try:
        qt = pwd.getpwnam(QT_USER)
    except KeyError:
        return
    for p in not_qts(run_dir) if paths is None else paths:
        os.lchown(p, qt.pw_uid, qt.pw_gid)


def _cmdline(pid):
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _lab_sshds():
    """Pids of the lab's sshd listeners, of any checkout ("sshd: /usr/sbin/sshd -f <checkout>/lab/run/ssh/...")."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            cmdline = _cmdline(entry.name)
            if b"sshd -f " in cmdline and b"/lab/run/ssh/sshd_config" in cmdline and b"[listener]" in cmdline:
                pids.append(int(entry.name))
    return pids


def _stop_pids(pids):
    """SIGTERM each sshd and wait (bounded, 5 s each) until it is gone."""
    for pid in pids:
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            continue
        for _dummy in range(50):
            if not Path(f"/proc/{pid}").exists():
                break
            time.sleep(0.1)


def stop(run_dir, log):
    """`labctl down`: stop this checkout's lab sshd (the accounts, keys and sudoers rule stay for the next `up`)."""
    config = f"-f {Path(run_dir).parent / 'ssh' / 'sshd_config'}".encode()  # as Host.ssh_dir
    ours = [pid for pid in _lab_sshds() if config in _cmdline(pid)]
    _stop_pids(ours)
    if ours:
        log(f"ssh host: sshd stopped (pid {', '.join(map(str, ours))})")


def _port_open():
    try:
        with socket.create_connection((SSH_ADDRESS, SSH_PORT), timeout=0.5):
            return True
    except OSError:
        return False


def ensure(run_dir, log):
    """Set up (or confirm) the SSH trading host around `run_dir`; raises SshHostError with one line."""
    return Host(run_dir, log).ensure()
