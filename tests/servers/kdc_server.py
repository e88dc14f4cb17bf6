"""A real MIT Kerberos KDC (Debian krb5-kdc) for a throwaway realm, on a free loopback port;
and ``SilentKdc``, the same realm behind an address that never answers (or answers late).

Tests get real tickets from it: password sign-ins (the seeded people have the
same passwords as in the LDAP test directory, so one password gives both an
LDAP bind and a TGT), renewals, expiries, service tickets for the Negotiate
test service and, with ``backend="ldap"``, constrained delegation (S4U2Proxy).

Nothing outside ``folder`` is read or changed: the KDC, kadmin.local and every
client in the test process read the ``krb5.conf`` and ``kdc.conf`` written
there (``KRB5_CONFIG`` / ``KRB5_KDC_PROFILE``, see ``env``); the default ticket cache,
keytabs and replay cache are files in ``folder`` too. Passwords (master key, the
people's, the directory's) reach the tools on stdin, never on a command line.
"""
from __future__ import annotations

import gzip
import os
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .app_server import free_port, stop_process
from .slapd_server import MODULE_PATH, SCHEMA_DIR, ssha, to_ldif
from .slapd_server import PASSWORDS as LDAP_PASSWORDS

KRB5KDC = "/usr/sbin/krb5kdc"
KDB5_UTIL = "/usr/sbin/kdb5_util"
KDB5_LDAP_UTIL = "/usr/sbin/kdb5_ldap_util"
KADMIN_LOCAL = "/usr/sbin/kadmin.local"
SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
#: MIT's Kerberos schema for OpenLDAP, shipped (only) as documentation of krb5-kdc-ldap.
KERBEROS_SCHEMA = Path("/usr/share/doc/krb5-kdc-ldap/kerberos.openldap.ldif.gz")

#: The people seeded as principals, with their LDAP test directory passwords.
SEED_USERS = ("alice", "bob", "jsmith", "nina")
PASSWORDS = {name: LDAP_PASSWORDS[name] for name in SEED_USERS}

#: The Negotiate test service (a browser asks for HTTP@localhost at http://localhost:<port>).
HTTP_SERVICE = "HTTP/localhost"
#: The Dash app's own service principal, which impersonates people (S4U2Self) and delegates (S4U2Proxy).
APP_SERVICE = "dash-app/localhost"

# kadmin.local reports failures on stderr only (its exit status is 0 either way); these lines are not failures.
_KADMIN_NOISE = ("No policy specified for ", "WARNING: no policy specified for ")


def _duration(seconds: int) -> str:
    return f"{int(seconds)}s"


def _quote(value: str) -> str:
    """A kadmin (ss library) argument: in double quotes, a quote doubled; newlines cannot be passed."""
    if "\n" in value or "\r" in value:
        raise ValueError("kadmin arguments cannot contain line breaks")
    return '"' + value.replace('"', '""') + '"'


@dataclass
class KdcServer:
    """``KdcServer(folder).start()``: realm ``EXAMPLE.ORG`` with the seed principals, until ``stop()``.

    ``ticket_lifetime`` and ``max_renewable_life`` (seconds) are both the KDC's limits (realm,
    krbtgt and every principal) and what clients ask for, so a short ``ticket_lifetime`` (MIT
    allows even a few seconds) gives tickets that really expire while they stay renewable.
    ``backend="ldap"`` keeps the principals in a private slapd instead of the DB2 file: only
    MIT's LDAP module implements constrained delegation (``allow_delegation``).
    """

    folder: Path
    realm: str = "EXAMPLE.ORG"
    ticket_lifetime: int = 3600
    max_renewable_life: int = 7 * 24 * 3600
    clockskew: int = 300
    backend: str = "db2"
    port: int = field(default_factory=free_port)
    ldap_port: int = field(default_factory=free_port)
    master_password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    ldap_admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    process: subprocess.Popen | None = None
    slapd_process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        if self.backend not in ("db2", "ldap"):
            raise ValueError(f"backend must be 'db2' or 'ldap', not {self.backend!r}")
        if self.max_renewable_life <= self.ticket_lifetime:
            raise ValueError("max_renewable_life must be longer than ticket_lifetime, or nothing is renewable")
        while self.ldap_port == self.port:
            self.ldap_port = free_port()

    # -- what tests use ------------------------------------------------------------------------

    @property
    def krb5_conf(self) -> Path:
        return self.folder / "krb5.conf"

    @property
    def kdc_conf(self) -> Path:
        return self.folder / "kdc.conf"

    @property
    def env(self) -> dict[str, str]:
        """For subprocesses (``{**os.environ, **kdc.env}``) and for os.environ of the test process.

        KRB5RCACHEDIR: acceptors without a replay cache of their own keep it here, not in /var/tmp.
        """
        return {"KRB5_CONFIG": str(self.krb5_conf), "KRB5_KDC_PROFILE": str(self.kdc_conf),
                "KRB5RCACHEDIR": str(self.folder)}

    @property
    def http_keytab(self) -> Path:
        """Keys of ``HTTP/localhost``, for the Negotiate test service."""
        return self.folder / "http.keytab"

    @property
    def app_keytab(self) -> Path:
        """Keys of ``dash-app/localhost`` (the app's own principal, allowed to impersonate: S4U2Self)."""
        return self.folder / "app.keytab"

    @property
    def kdc_url(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.folder / "kdc.log"

    def principal(self, name: str) -> str:
        """``name@REALM`` unless ``name`` already names a realm."""
        return name if "@" in name else f"{name}@{self.realm}"

    def log(self, lines: int = 40) -> str:
        """The last ``lines`` lines of the KDC's log (one line per AS/TGS request), for error messages."""
        text = "".join(p.read_text(errors="replace") for p in (self.log_path, self.folder / "krb5kdc.out",
                                                                  self.folder / "slapd.log") if p.exists())
        return "\n".join(text.splitlines()[-lines:])

    def start(self) -> "KdcServer":
        """Start the KDC (creating and seeding the realm the first time); returns once it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            if self.backend == "ldap":
                self._start_slapd()
            if not (self.folder / "seeded").exists():
                self._create_realm()
            with open(self.folder / "krb5kdc.out", "ab") as out:
                # -n: stay in the foreground as our child, so stop() can signal and reap it.
                self.process = subprocess.Popen([KRB5KDC, "-n", "-r", self.realm], env=self._tool_env(),
                                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            self._wait_until_listening()
        except BaseException:
            self.stop()  # never leave a server behind
            raise
        return self

    def stop(self) -> None:
        """Stop the KDC (and its slapd) and wait for them; the realm stays for the next start()."""
        process, self.process = self.process, None
        stop_process(process)
        slapd, self.slapd_process = self.slapd_process, None
        stop_process(slapd)

    def add_principal(self, name: str, password: str | None = None, *, keytab: Path | None = None,
                      flags: str = "", max_life: int | None = None, max_renewable_life: int | None = None) -> None:
        """Create ``name`` with ``password``, or with random keys written to ``keytab``.

        People (a password) get ``+requires_preauth`` as in Active Directory: a wrong password is
        then PREAUTH_FAILED at the KDC, which counts it for lockout policies (without preauth the
        client finds out alone, "Decrypt integrity check failed", and nothing is counted).
        ``flags`` are more kadmin attributes, e.g. ``"-requires_preauth -allow_forwardable"``;
        ``max_life`` / ``max_renewable_life`` (seconds) override the realm's for this principal.
        """
        if (password is None) == (keytab is None):
            raise ValueError("give a password or a keytab (random keys), not both")
        life = _duration(max_life or self.ticket_lifetime)
        renew = _duration(max_renewable_life or self.max_renewable_life)
        if password is None:
            secret = "-randkey"
        else:
            secret = f"-pw {_quote(password)}"
            flags = f"+requires_preauth {flags}"  # later attributes win, so flags can undo it
        commands = [f"addprinc -maxlife {life} -maxrenewlife {renew} {flags} {secret} {_quote(self.principal(name))}"]
        if keytab is not None:
            # -norandkey (kadmin.local only): write the keys just made, so the kvno stays 1.
            commands.append(f"ktadd -k {_quote(str(keytab))} -norandkey {_quote(self.principal(name))}")
        self.kadmin(*commands)

    def set_policy(self, principal: str, policy: str, options: str = "") -> None:
        """Attach password policy ``policy`` (created with kadmin ``addpol`` ``options`` the first time,
        e.g. ``"-maxfailure 3 -lockoutduration 60s"``) to ``principal``."""
        existing = self.kadmin("listpols")
        if policy not in existing.split():
            self.kadmin(f"addpol {options} {_quote(policy)}")
        self.kadmin(f"modprinc -policy {_quote(policy)} {_quote(self.principal(principal))}")

    def kadmin(self, *commands: str) -> str:
        """Run kadmin.local commands (on stdin, so passwords in them stay off command lines); their output.

        Raises with kadmin's complaints when any command fails (kadmin.local itself always exits 0).
        """
        result = subprocess.run([KADMIN_LOCAL, "-r", self.realm], input="\n".join(commands) + "\n",
                                capture_output=True, text=True, env=self._tool_env(), timeout=60)
        errors = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith(_KADMIN_NOISE)]
        if result.returncode != 0 or errors:
            raise RuntimeError(f"kadmin.local failed ({result.returncode}): {' / '.join(errors)}")
        # Without a terminal kadmin.local echoes each command after its prompt; keep only the answers.
        return "".join(line for line in result.stdout.splitlines(keepends=True)
                       if not line.startswith(("kadmin.local:", "Authenticating as principal")))

    def allow_delegation(self, service: str, to: list[str]) -> None:
        """Let ``service`` impersonate anyone (protocol transition, S4U2Self with a forwardable
        ticket) and use such tickets for the services ``to`` (constrained delegation, S4U2Proxy).

        Needs ``backend="ldap"``: the allowed targets are the principal entry's krbAllowedToDelegateTo
        values, which MIT's DB2 module has no place for (its KDC answers every S4U2Proxy request
        with KDC_ERR_BADOPTION, logged as UNSUPPORTED_S4U2PROXY_REQUEST).
        """
        if self.backend != "ldap":
            raise RuntimeError("constrained delegation needs KdcServer(backend='ldap'); the DB2 KDB has no "
                               "allowed-to-delegate-to list (UNSUPPORTED_S4U2PROXY_REQUEST)")
        self.kadmin(f"modprinc +ok_to_auth_as_delegate {_quote(self.principal(service))}")
        changes = [("changetype", "modify"), ("replace", "krbAllowedToDelegateTo"),
                   *(("krbAllowedToDelegateTo", self.principal(target)) for target in to)]
        self._ldapmodify(to_ldif([(self._principal_dn(service), changes)]) + "-\n")

    # -- internals -----------------------------------------------------------------------------

    def _tool_env(self) -> dict[str, str]:
        # LDAPNOINIT: the LDAP library in the KDC and the tools ignores /etc/ldap/ldap.conf.
        return {**os.environ, **self.env, "LDAPNOINIT": "1"}

    def _wait_until_listening(self, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"krb5kdc exited with {self.process.returncode}:\n{self.log()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"krb5kdc did not listen on {self.kdc_url} within {seconds}s:\n{self.log()}")

    def _write_configs(self) -> None:
        folder, realm = self.folder, self.realm
        self.krb5_conf.write_text(f"""\
# Client side: what libkrb5 in the tests, the app and the command line tools use.
[libdefaults]
    default_realm = {realm}
    dns_lookup_kdc = false
    dns_lookup_realm = false
    dns_canonicalize_hostname = false
    rdns = false
    forwardable = true
    ticket_lifetime = {_duration(self.ticket_lifetime)}
    renew_lifetime = {_duration(self.max_renewable_life)}
    clockskew = {self.clockskew}
    default_ccache_name = FILE:{folder}/ccache
    default_keytab_name = FILE:{folder}/default.keytab
    default_client_keytab_name = FILE:{folder}/client.keytab

[realms]
    {realm} = {{
        kdc = 127.0.0.1:{self.port}
    }}

[domain_realm]
    localhost = {realm}
    .localhost = {realm}
""")
        if self.backend == "ldap":
            database = f"""\
        db_library = kldap
        ldap_servers = ldap://127.0.0.1:{self.ldap_port}
        ldap_kerberos_container_dn = {self._container_dn}
        ldap_kdc_dn = {self._ldap_admin_dn}
        ldap_kadmind_dn = {self._ldap_admin_dn}
        ldap_service_password_file = {folder}/ldap.stash
        ldap_conns_per_server = 4"""
        else:
            database = f"""\
        db_library = db2
        database_name = {folder}/principal"""
        self.kdc_conf.write_text(f"""\
# KDC side: krb5kdc, kdb5_util and kadmin.local (no kadmind: tests change principals with kadmin.local).
[kdcdefaults]
    kdc_listen = 127.0.0.1:{self.port}
    kdc_tcp_listen = 127.0.0.1:{self.port}

[realms]
    {realm} = {{
        database_module = {realm}
        key_stash_file = {folder}/stash
        acl_file = {folder}/kadm5.acl
        max_life = {_duration(self.ticket_lifetime)}
        max_renewable_life = {_duration(self.max_renewable_life)}
    }}

[dbmodules]
    {realm} = {{
{database}
    }}

[logging]
    kdc = FILE:{folder}/kdc.log
    admin_server = FILE:{folder}/kadmin.log
    default = FILE:{folder}/kdc.log
""")
        (folder / "kadm5.acl").write_text("")

    def _create_realm(self) -> None:
        """The database with its krbtgt (limits from kdc.conf), then the seed principals (first start only)."""
        self._write_configs()
        master = f"{self.master_password}\n" * 2
        if self.backend == "ldap":
            admin = f"{self.ldap_admin_password}\n" * 2
            self._run([KDB5_LDAP_UTIL, "stashsrvpw", "-f", str(self.folder / "ldap.stash"), self._ldap_admin_dn],
                      admin)
            # Binds as ldap_kadmind_dn with the stashed password: no -D/-w on the command line.
            self._run([KDB5_LDAP_UTIL, "-H", f"ldap://127.0.0.1:{self.ldap_port}", "create",
                       "-subtrees", self._ldap_base, "-r", self.realm, "-s"], master)
        else:
            self._run([KDB5_UTIL, "create", "-r", self.realm, "-s"], master)
        for name, password in PASSWORDS.items():
            self.add_principal(name, password)
        self.add_principal(HTTP_SERVICE, keytab=self.http_keytab)
        # The app may impersonate (S4U2Self with forwardable tickets); where it may delegate to is
        # allow_delegation's business.
        self.add_principal(APP_SERVICE, keytab=self.app_keytab, flags="+ok_to_auth_as_delegate")
        (self.folder / "seeded").touch()

    def _run(self, args: list[str], stdin: str) -> None:
        result = subprocess.run(args, input=stdin, capture_output=True, text=True, env=self._tool_env(), timeout=60)
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} {args[1]} failed ({result.returncode}): "
                               f"{result.stderr.strip()}\n{self.log()}")

    # -- the LDAP backend: a private slapd holding the realm ---------------------------------

    _ldap_base = "dc=example,dc=org"
    _ldap_admin_dn = "cn=admin,dc=example,dc=org"
    _container_dn = "cn=krbcontainer,dc=example,dc=org"

    def _principal_dn(self, name: str) -> str:
        # kdb5_ldap_util/kadmin.local put principals right under the realm container.
        return f"krbPrincipalName={self.principal(name)},cn={self.realm},{self._container_dn}"

    def _start_slapd(self) -> None:
        """slapd with MIT's Kerberos schema on a loopback port (configured the first time)."""
        config_dir = self.folder / "slapd.d"
        if not config_dir.exists():
            self._configure_slapd(config_dir)
        with open(self.folder / "slapd.log", "ab") as log:
            self.slapd_process = subprocess.Popen(
                [SLAPD, "-d", "0", "-F", str(config_dir), "-h", f"ldap://127.0.0.1:{self.ldap_port}/"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while True:
            if self.slapd_process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.slapd_process.returncode}:\n{self.log()}")
            try:
                self._ldapsearch_base()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _configure_slapd(self, config_dir: Path) -> None:
        if not KERBEROS_SCHEMA.exists():
            raise RuntimeError(f"{KERBEROS_SCHEMA} is missing: install krb5-kdc-ldap with its documentation "
                               "(images that path-exclude /usr/share/doc drop MIT's Kerberos schema)")
        data_dir = self.folder / "ldap-data"
        data_dir.mkdir(exist_ok=True)
        staging = self.folder / "slapd.d.new"
        staging.mkdir()
        kerberos_schema = gzip.decompress(KERBEROS_SCHEMA.read_bytes()).decode()
        head = to_ldif([
            ("cn=config", [("objectClass", "olcGlobal"), ("cn", "config"),
                           ("olcPidFile", str(self.folder / "slapd.pid")), ("olcLogLevel", "none")]),
            ("cn=module{0},cn=config", [("objectClass", "olcModuleList"), ("cn", "module{0}"),
                                        ("olcModulePath", MODULE_PATH), ("olcModuleLoad", "back_mdb")]),
            ("cn=schema,cn=config", [("objectClass", "olcSchemaConfig"), ("cn", "schema")]),
        ])
        tail = to_ldif([
            ("olcDatabase={-1}frontend,cn=config", [("objectClass", "olcDatabaseConfig"),
                                                    ("objectClass", "olcFrontendConfig"),
                                                    ("olcDatabase", "{-1}frontend")]),
            ("olcDatabase={0}config,cn=config", [("objectClass", "olcDatabaseConfig"), ("olcDatabase", "{0}config"),
                                                 ("olcAccess", "{0}to * by * none")]),
            ("olcDatabase={1}mdb,cn=config", [
                ("objectClass", "olcDatabaseConfig"), ("objectClass", "olcMdbConfig"),
                ("olcDatabase", "{1}mdb"), ("olcSuffix", self._ldap_base), ("olcRootDN", self._ldap_admin_dn),
                ("olcRootPW", ssha(self.ldap_admin_password)), ("olcDbDirectory", str(data_dir)),
                ("olcDbIndex", "objectClass eq"), ("olcDbIndex", "krbPrincipalName eq,sub"),
                # Only the root DN (the KDC and the tools) sees keys; nobody else sees anything.
                ("olcAccess", "{0}to * by * none"),
            ]),
        ])
        schemas = "\n".join(f"include: file://{SCHEMA_DIR / name}.ldif" for name in ("core", "cosine"))
        config = self.folder / "slapd-config.ldif"
        config.write_text(f"{head}\n{schemas}\n\n{kerberos_schema.strip()}\n\n{tail}")
        base = self.folder / "slapd-base.ldif"
        base.write_text(to_ldif([(self._ldap_base, [("objectClass", "dcObject"), ("objectClass", "organization"),
                                                     ("dc", "example"), ("o", "Example Org Kerberos")])]))
        with open(self.folder / "slapd.log", "ab") as log:
            for args in (["-n0", "-F", str(staging), "-l", str(config)],
                         ["-n1", "-F", str(staging), "-l", str(base)]):
                if subprocess.run([SLAPADD, "-q", *args], stdout=log, stderr=subprocess.STDOUT).returncode != 0:
                    raise RuntimeError(f"slapadd {' '.join(args)} failed:\n{self.log()}")
        staging.rename(config_dir)

    def _ldap_password_file(self) -> Path:
        path = self.folder / "ldap-admin.password"
        if not path.exists():
            path.touch(mode=0o600)
            path.write_text(self.ldap_admin_password)
        return path

    def _ldap_tool(self, tool: str, *args: str, input: str | None = None) -> str:
        result = subprocess.run(
            [tool, "-x", "-H", f"ldap://127.0.0.1:{self.ldap_port}", "-D", self._ldap_admin_dn,
             "-y", str(self._ldap_password_file()), *args],
            input=input, capture_output=True, text=True, env=self._tool_env(), timeout=30)
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}")
        return result.stdout

    def _ldapsearch_base(self) -> None:
        self._ldap_tool("ldapsearch", "-LLL", "-o", "nettimeout=2", "-b", self._ldap_base, "-s", "base", "1.1")

    def _ldapmodify(self, ldif: str) -> None:
        self._ldap_tool("ldapmodify", input=ldif)


class SilentKdc:
    """``kdc``'s realm behind a KDC address that never answers, or answers late.

    On a loopback port of its own it receives UDP datagrams and accepts TCP connections, as
    a hung KDC does, and stays silent; with ``answer_after`` it passes each request on to
    ``kdc`` that many seconds later and relays the answer. ``krb5_conf`` is ``kdc``'s client
    configuration with this address as the realm's only KDC: point ``KRB5_CONFIG`` at it.
    ``requests`` counts what reached it (proof that a client asked), ``answered`` the answers
    relayed. ``stop()`` closes every connection, so clients still waiting give up at once.
    """

    def __init__(self, kdc: KdcServer, answer_after: float | None = None) -> None:
        self.kdc = kdc
        self.answer_after = answer_after
        self.port = free_port()
        self.requests = 0
        self.answered = 0
        self._counts = threading.Lock()
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def krb5_conf(self) -> Path:
        return self.kdc.folder / f"krb5-silent-{self.port}.conf"

    def start(self) -> "SilentKdc":
        real = f"kdc = {self.kdc.kdc_url}\n"
        config = self.kdc.krb5_conf.read_text()
        assert config.count(real) == 1, "the realm should name exactly one KDC"
        self.krb5_conf.write_text(config.replace(real, f"kdc = 127.0.0.1:{self.port}\n"))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", self.port))
        tcp.listen(64)
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", self.port))
        self._spawn(self._accept, tcp)
        self._spawn(self._receive, udp)
        return self

    def stop(self) -> None:
        """Close everything (each thread closes its own socket within 0.1 s) and wait for that."""
        self._stopped.set()
        for thread in list(self._threads):
            thread.join(5)

    # -- internals -----------------------------------------------------------------------------

    def _spawn(self, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="silent-kdc")
        self._threads.append(thread)
        thread.start()

    def _count(self, field: str) -> None:
        with self._counts:
            setattr(self, field, getattr(self, field) + 1)

    def _accept(self, tcp: socket.socket) -> None:
        tcp.settimeout(0.1)  # polled, so stop() needs no cross-thread close
        with tcp:
            while not self._stopped.is_set():
                try:
                    connection, _ = tcp.accept()
                except socket.timeout:
                    continue
                connection.settimeout(0.1)
                self._spawn(self._serve, connection)

    def _serve(self, connection: socket.socket) -> None:
        """One TCP client: length-prefixed requests, each left unanswered or answered late."""
        with connection:
            while (request := self._message(connection)) is not None:
                self._count("requests")
                answer = self._from_kdc(request, over_tcp=True)
                if answer is not None:
                    try:
                        connection.sendall(answer)
                    except OSError:
                        return  # the client gave up on this connection
                    self._count("answered")

    def _message(self, connection: socket.socket) -> bytes | None:
        """A KDC message over TCP (4-byte big-endian length, then the body); None at EOF or stop."""
        head = self._exactly(connection, 4)
        body = head and self._exactly(connection, int.from_bytes(head, "big"))
        return None if body is None else head + body

    def _exactly(self, connection: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size:
            if self._stopped.is_set():
                return None
            try:
                chunk = connection.recv(size - len(data))
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            data += chunk
        return data

    def _receive(self, udp: socket.socket) -> None:
        udp.settimeout(0.1)
        with udp:
            while not self._stopped.is_set():
                try:
                    request, client = udp.recvfrom(65536)
                except socket.timeout:
                    continue
                self._count("requests")
                if self.answer_after is not None:
                    self._spawn(self._answer_datagram, udp, request, client)

    def _answer_datagram(self, udp: socket.socket, request: bytes, client: tuple[str, int]) -> None:
        answer = self._from_kdc(request, over_tcp=False)
        if answer is not None:
            try:
                udp.sendto(answer, client)
            except OSError:
                return  # stopped meanwhile: the socket is closed
            self._count("answered")

    def _from_kdc(self, request: bytes, *, over_tcp: bool) -> bytes | None:
        """The real KDC's answer to ``request`` once ``answer_after`` has passed; None when
        this KDC never answers, stops meanwhile or cannot reach the real one."""
        if self.answer_after is None or self._stopped.wait(self.answer_after):
            return None
        try:
            if over_tcp:
                with socket.create_connection(("127.0.0.1", self.kdc.port), timeout=10) as upstream:
                    upstream.settimeout(0.1)
                    upstream.sendall(request)
                    return self._message(upstream)
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as upstream:
                upstream.settimeout(10)
                upstream.sendto(request, ("127.0.0.1", self.kdc.port))
                return upstream.recv(65536)
        except OSError:
            return None
