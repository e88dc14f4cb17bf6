"""A real OpenLDAP slapd (Debian package) in a throwaway folder, on free loopback ports.

It speaks plain LDAP (with StartTLS) and LDAPS with a certificate from the
test's own CA, runs the memberof and ppolicy overlays and keeps its data
between ``stop()`` and ``start()``, so LDAP tests exercise what a real
directory does: escaping, nested groups, locked and AD-disabled accounts,
failover and outages. Nothing outside ``folder`` is read or changed (the
client tools run with LDAPNOINIT, slapd with its own ``-F`` config).
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import os
import re
import secrets
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from .app_server import free_port, stop_process

SLAPD = "/usr/sbin/slapd"
SLAPADD = "/usr/sbin/slapadd"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = Path("/etc/ldap/schema")

BASE_DN = "dc=example,dc=org"
PEOPLE_BASE = f"ou=people,{BASE_DN}"
CONTRACTORS_BASE = f"ou=contractors,{BASE_DN}"
GROUPS_BASE = f"ou=groups,{BASE_DN}"
SERVICES_BASE = f"ou=services,{BASE_DN}"
POLICIES_BASE = f"ou=policies,{BASE_DN}"

#: Passwords of the seeded people, by uid (both ``dup`` entries share one).
PASSWORDS = {
    "alice": "alice-password",
    "bob": "bob-password",
    "jsmith": "jsmith-password",
    "nina": "nina-password",
    "dup": "dup-password",
    "locked": "locked-password",
    "disabled": "disabled-password",
    "we(ird)*\\name": "weird-password",
}

#: DN of each seeded person by uid; ``dup`` has two entries, the people one is listed here.
#: slapd hands DNs back in its own escaping: jsmith's entry DN and member value come back as
#: ``cn=Smith\2C John,...``, so compare DNs parsed, not as strings.
USER_DNS = {
    "alice": f"uid=alice,{PEOPLE_BASE}",
    "bob": f"uid=bob,{PEOPLE_BASE}",
    "jsmith": f"cn=Smith\\, John,{PEOPLE_BASE}",
    "nina": f"uid=nina,{PEOPLE_BASE}",
    "dup": f"uid=dup,{PEOPLE_BASE}",
    "locked": f"uid=locked,{PEOPLE_BASE}",
    "disabled": f"uid=disabled,{PEOPLE_BASE}",
    "we(ird)*\\name": f"cn=Weird Name,{PEOPLE_BASE}",
}
DUP_DNS = (f"uid=dup,{PEOPLE_BASE}", f"uid=dup,{CONTRACTORS_BASE}")
WEIRD_UID = "we(ird)*\\name"

#: DN of each seeded group by cn.
GROUP_DNS = {name: f"cn={name},{GROUPS_BASE}" for name in ("analysts", "staff", "data-team", "dup-group", "weird")}

#: Direct members of each group (``analysts`` also holds the data-team group: a nested group).
GROUP_MEMBERS = {
    "analysts": [USER_DNS["alice"], USER_DNS["jsmith"], GROUP_DNS["data-team"]],
    "staff": [USER_DNS["alice"], USER_DNS["bob"]],
    "data-team": [USER_DNS["nina"]],
    "dup-group": list(DUP_DNS),
    "weird": [USER_DNS[WEIRD_UID]],
}

#: AD userAccountControl values: 512 is a normal account, 514 has the ACCOUNTDISABLE bit (2) set.
USER_ACCOUNT_CONTROL = {"alice": 512, "disabled": 514}

# Our own private-enterprise-style OIDs for the AD-like schema (1.3.6.1.4.1.99999 is not a real arc).
AD_LIKE_SCHEMA = [
    ("olcAttributeTypes", "( 1.3.6.1.4.1.99999.1.1 NAME 'userAccountControl' "
                          "DESC 'AD-like account flags for tests' EQUALITY integerMatch "
                          "SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )"),
    ("olcObjectClasses", "( 1.3.6.1.4.1.99999.2.1 NAME 'adLikeAccount' "
                         "DESC 'An account with AD-like flags' SUP top AUXILIARY MAY ( userAccountControl ) )"),
]

Entry = tuple[str, list[tuple[str, str]]]

# slapd's stats lines for a bind and for its answer: "conn=1003 op=0 BIND dn="..." method=128",
# "conn=1003 op=0 RESULT tag=97 err=49 ..." (tag 97 is a BindResponse).
_BIND_LINE = re.compile(r'conn=(\d+) op=(\d+) BIND dn="(.*)" method=')
_BIND_RESULT_LINE = re.compile(r"conn=(\d+) op=(\d+) RESULT tag=97 err=(\d+)")


@dataclass(frozen=True)
class Bind:
    """A bind slapd logged: the DN asked for and its result code (None until slapd logged the answer)."""

    dn: str
    result: int | None


def ssha(password: str) -> str:
    """An {SSHA} userPassword value, so the directory never stores plain passwords."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def _ldif_line(name: str, value: str) -> str:
    """``name: value``, base64 (``name:: ...``) when RFC 2849 does not allow the value as it is."""
    safe = value.isascii() and value == value.strip() and "\n" not in value and "\r" not in value \
        and "\0" not in value and not value.startswith((":", "<"))
    if safe:
        return f"{name}: {value}"
    return f"{name}:: {base64.b64encode(value.encode()).decode()}"


def to_ldif(entries: list[Entry]) -> str:
    return "\n".join("\n".join([_ldif_line("dn", dn), *(_ldif_line(a, v) for a, v in attrs)]) + "\n"
                     for dn, attrs in entries)


def _person(dn: str, uid: str, cn: str, sn: str, password: str, *, mail: str | None = None,
            extra: list[tuple[str, str]] | None = None) -> Entry:
    attrs = [("objectClass", "inetOrgPerson"), ("uid", uid), ("cn", cn), ("sn", sn),
             ("displayName", cn), ("mail", mail or f"{uid}@example.org"), ("userPassword", ssha(password))]
    return dn, attrs + (extra or [])


def _ad_like(uid: str) -> list[tuple[str, str]]:
    return [("objectClass", "adLikeAccount"), ("userAccountControl", str(USER_ACCOUNT_CONTROL[uid]))]


def seed_people() -> list[Entry]:
    """The people the tests sign in as (added over LDAP after the first start)."""
    return [
        _person(USER_DNS["alice"], "alice", "Alice Liddell", "Liddell", PASSWORDS["alice"], extra=_ad_like("alice")),
        _person(USER_DNS["bob"], "bob", "Bob Builder", "Builder", PASSWORDS["bob"]),
        _person(USER_DNS["jsmith"], "jsmith", "Smith, John", "Smith", PASSWORDS["jsmith"]),
        _person(USER_DNS["nina"], "nina", "Nina Nested", "Nested", PASSWORDS["nina"]),
        _person(DUP_DNS[0], "dup", "Dup People", "People", PASSWORDS["dup"]),
        _person(DUP_DNS[1], "dup", "Dup Contractor", "Contractor", PASSWORDS["dup"]),
        _person(USER_DNS["locked"], "locked", "Locked Out", "Out", PASSWORDS["locked"],
                extra=[("pwdAccountLockedTime", "000001010000Z")]),
        _person(USER_DNS["disabled"], "disabled", "Disabled Account", "Account", PASSWORDS["disabled"],
                extra=_ad_like("disabled")),
        _person(USER_DNS[WEIRD_UID], WEIRD_UID, "Weird Name", "Name", PASSWORDS[WEIRD_UID],
                mail="weird@example.org"),
    ]


def seed_groups() -> list[Entry]:
    """Groups are added after the people, so the memberof overlay really writes ``memberOf``."""
    # data-team first: analysts lists it as a member.
    order = ["data-team", "analysts", "staff", "dup-group", "weird"]
    return [(GROUP_DNS[name], [("objectClass", "groupOfNames"), ("cn", name),
                               *(("member", m) for m in GROUP_MEMBERS[name])]) for name in order]


def make_tls_files(folder: Path) -> tuple[Path, Path, Path]:
    """A test CA, and a server certificate it signs for DNS:localhost only.

    No IP address in the certificate: connecting to 127.0.0.1 must fail the hostname check.
    """
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dash-enterprise-auth test LDAP CA")])
    ca_cert = (
        x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=True, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    return ca_path, cert_path, key_path


@dataclass
class SlapdServer:
    folder: Path
    base_dn: str = BASE_DN
    admin_dn: str = f"cn=admin,{BASE_DN}"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    service_dn: str = f"cn=dash-app,{SERVICES_BASE}"
    service_password: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    people_base: str = PEOPLE_BASE
    groups_base: str = GROUPS_BASE
    ldap_port: int = field(default_factory=free_port)
    ldaps_port: int = field(default_factory=free_port)
    #: Also serve this suffix from a back-null database that accepts a bind as *any* DN under it,
    #: with any password, and whose searches find nobody: a directory (or proxy) that
    #: does not check passwords of names it does not know.
    accept_any_bind_under: str | None = None
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.folder = Path(self.folder)
        while self.ldaps_port == self.ldap_port:
            self.ldaps_port = free_port()

    @property
    def ldap_url(self) -> str:
        return f"ldap://localhost:{self.ldap_port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://localhost:{self.ldaps_port}"

    @property
    def ca_file(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def log_path(self) -> Path:
        return self.folder / "slapd.log"

    @property
    def _config_dir(self) -> Path:
        return self.folder / "slapd.d"

    def log(self, lines: int = 40) -> str:
        """The last ``lines`` lines slapd (and the setup tools) wrote, for error messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_mark(self) -> int:
        """Where the log ends now; ``binds_since(mark)`` reads only what slapd logged after it."""
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def binds_since(self, mark: int) -> list[Bind]:
        """Every bind slapd logged after ``mark`` (``-d stats``), in order, with its result code.

        slapd logs a result after sending it, so a client can see the answer before the log
        does: wait for the result (``Bind.result is not None``) rather than reading once.
        """
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            text = log.read().decode("utf-8", "replace")
        binds: dict[tuple[str, str], Bind] = {}
        for line in text.splitlines():
            if match := _BIND_LINE.search(line):
                binds.setdefault(match.group(1, 2), Bind(match.group(3), None))
            elif (match := _BIND_RESULT_LINE.search(line)) and match.group(1, 2) in binds:
                key = match.group(1, 2)
                binds[key] = Bind(binds[key].dn, int(match.group(3)))
        return list(binds.values())

    def start(self) -> "SlapdServer":
        """Start slapd (configuring and seeding it the first time); returns once the service account can search."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self._config_dir.exists():
            self._configure()
        urls = f"ldap://127.0.0.1:{self.ldap_port}/ ldaps://127.0.0.1:{self.ldaps_port}/"
        with open(self.log_path, "ab") as log:
            # -d keeps slapd in the foreground as our child, so stop() can signal and wait for it;
            # "stats" logs startup errors and one line per operation (what a failing test wants to see).
            self.process = subprocess.Popen([SLAPD, "-d", "stats", "-F", str(self._config_dir), "-h", urls],
                                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            self._wait_until_ready()
            seeded = self.folder / "seeded"
            if not seeded.exists():
                self.modify(to_ldif(seed_people() + seed_groups()), add=True)
                seeded.touch()
        except BaseException:
            self.stop()  # never leave a server behind
            raise
        return self

    def stop(self) -> None:
        """Stop slapd and wait for it; the configuration and data stay for the next start()."""
        process, self.process = self.process, None
        stop_process(process)

    def modify(self, ldif: str, *, add: bool = False) -> None:
        """Apply LDIF changes as the directory admin (``ldapmodify``; ``add=True`` for plain entries)."""
        self._ldap_tool("ldapmodify", *(["-a"] if add else []), input=ldif)

    # -- internals -----------------------------------------------------------------------------

    def _tool_env(self) -> dict[str, str]:
        # LDAPNOINIT: ignore /etc/ldap/ldap.conf and ~/.ldaprc, so only our arguments count.
        return {**os.environ, "LDAPNOINIT": "1"}

    def _password_file(self, name: str, password: str) -> Path:
        """The password in a private file for ``-y``, so it is not on a command line."""
        path = self.folder / f"{name}.password"
        path.touch(mode=0o600)
        path.write_text(password)
        return path

    def _ldap_tool(self, tool: str, *args: str, input: str | None = None, as_service: bool = False,
                   timeout: float = 30) -> None:
        if as_service:
            bind_dn, password_file = self.service_dn, self._password_file("service", self.service_password)
        else:
            bind_dn, password_file = self.admin_dn, self._password_file("admin", self.admin_password)
        result = subprocess.run(
            [tool, "-x", "-H", f"ldap://127.0.0.1:{self.ldap_port}", "-D", bind_dn,
             "-y", str(password_file), *args],
            input=input, capture_output=True, text=True, env=self._tool_env(), timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n"
                               f"{result.stdout.strip()}\n--- slapd log ---\n{self.log()}")

    def _wait_until_ready(self, seconds: float = 20) -> None:
        deadline = time.monotonic() + seconds
        error = ""
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"slapd exited with {self.process.returncode}:\n{self.log()}")
            try:
                self._ldap_tool("ldapsearch", "-LLL", "-o", "nettimeout=2", "-b", self.base_dn, "-s", "base",
                                "1.1", as_service=True, timeout=5)
                return
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                error = str(exc).split("\n--- slapd log ---")[0]
                time.sleep(0.05)
        raise RuntimeError(f"slapd did not answer a service-account search within {seconds}s "
                           f"(last error: {error}):\n{self.log()}")

    def _configure(self) -> None:
        """Write cn=config and the directory skeleton with slapadd (first start only)."""
        ca, cert, key = make_tls_files(self.folder)
        data_dir = self.folder / "data"
        data_dir.mkdir(exist_ok=True)
        staging = self.folder / "slapd.d.new"
        staging.mkdir()
        config = self.folder / "config.ldif"
        config.write_text(self._config_ldif(ca, cert, key, data_dir))
        skeleton = self.folder / "skeleton.ldif"
        skeleton.write_text(to_ldif(self._skeleton()))
        with open(self.log_path, "ab") as log:
            for args in (["-n0", "-F", str(staging), "-l", str(config)],
                         ["-n1", "-F", str(staging), "-l", str(skeleton)]):
                result = subprocess.run([SLAPADD, "-q", *args], stdout=log, stderr=subprocess.STDOUT)
                if result.returncode != 0:
                    raise RuntimeError(f"slapadd {' '.join(args)} failed:\n{self.log()}")
        staging.rename(self._config_dir)  # only a complete config counts as "configured"

    def _config_ldif(self, ca: Path, cert: Path, key: Path, data_dir: Path) -> str:
        schema_includes = "\n".join(f"include: file://{SCHEMA_DIR / name}.ldif"
                                    for name in ("core", "cosine", "inetorgperson"))
        ad_like = to_ldif([("cn=adlike,cn=schema,cn=config",
                            [("objectClass", "olcSchemaConfig"), ("cn", "adlike"), *AD_LIKE_SCHEMA])])
        service = self.service_dn
        acl = [
            # Passwords: checked by binds, changed by their owner, read by nobody.
            "{0}to attrs=userPassword by self write by anonymous auth by * none",
            # Everything else: the service account reads all, people read themselves, anonymous nothing.
            f'{{1}}to * by dn.exact="{service}" read by self read by * none',
        ]
        database = [
            ("objectClass", "olcDatabaseConfig"), ("objectClass", "olcMdbConfig"),
            ("olcDatabase", "{1}mdb"), ("olcSuffix", self.base_dn), ("olcRootDN", self.admin_dn),
            ("olcRootPW", ssha(self.admin_password)), ("olcDbDirectory", str(data_dir)),
            ("olcDbIndex", "objectClass eq"), ("olcDbIndex", "uid,cn,mail eq,sub"),
            ("olcDbIndex", "member,memberOf eq"),
            *(("olcAccess", rule) for rule in acl),
        ]
        entries: list[Entry] = [
            ("cn=config", [
                ("objectClass", "olcGlobal"), ("cn", "config"),
                ("olcPidFile", str(self.folder / "slapd.pid")), ("olcArgsFile", str(self.folder / "slapd.args")),
                ("olcTLSCACertificateFile", str(ca)), ("olcTLSCertificateFile", str(cert)),
                ("olcTLSCertificateKeyFile", str(key)), ("olcLogLevel", "none"),
                # Like many production directories: a DN with an empty password is an
                # anonymous ("unauthenticated") bind that succeeds, RFC 4513 5.1.2.
                ("olcAllows", "bind_anon_dn"),
            ]),
            ("cn=module{0},cn=config", [
                ("objectClass", "olcModuleList"), ("cn", "module{0}"), ("olcModulePath", MODULE_PATH),
                ("olcModuleLoad", "back_mdb"), ("olcModuleLoad", "memberof"), ("olcModuleLoad", "ppolicy"),
                *([("olcModuleLoad", "back_null")] if self.accept_any_bind_under else []),
            ]),
            ("cn=schema,cn=config", [("objectClass", "olcSchemaConfig"), ("cn", "schema")]),
        ]
        tail: list[Entry] = [
            ("olcDatabase={-1}frontend,cn=config", [
                ("objectClass", "olcDatabaseConfig"), ("objectClass", "olcFrontendConfig"),
                ("olcDatabase", "{-1}frontend"),
            ]),
            ("olcDatabase={0}config,cn=config", [
                ("objectClass", "olcDatabaseConfig"), ("olcDatabase", "{0}config"),
                ("olcAccess", "{0}to * by * none"),
            ]),
            ("olcDatabase={1}mdb,cn=config", database),
            ("olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config", [
                ("objectClass", "olcOverlayConfig"), ("objectClass", "olcMemberOf"),
                ("olcOverlay", "{0}memberof"), ("olcMemberOfGroupOC", "groupOfNames"),
                ("olcMemberOfMemberAD", "member"), ("olcMemberOfMemberOfAD", "memberOf"),
                # memberof keeps member/memberOf consistent itself when entries are renamed or deleted.
                ("olcMemberOfRefInt", "TRUE"), ("olcMemberOfDangling", "ignore"),
            ]),
            ("olcOverlay={1}ppolicy,olcDatabase={1}mdb,cn=config", [
                ("objectClass", "olcOverlayConfig"), ("objectClass", "olcPPolicyConfig"),
                ("olcOverlay", "{1}ppolicy"), ("olcPPolicyDefault", f"cn=default,{POLICIES_BASE}"),
            ]),
        ]
        if self.accept_any_bind_under:
            tail.append(("olcDatabase={2}null,cn=config", [
                ("objectClass", "olcDatabaseConfig"), ("objectClass", "olcNullConfig"),
                ("olcDatabase", "{2}null"), ("olcSuffix", self.accept_any_bind_under),
                ("olcDbBindAllowed", "TRUE"),
            ]))
        return f"{to_ldif(entries)}\n{schema_includes}\n\n{ad_like}\n{to_ldif(tail)}"

    def _skeleton(self) -> list[Entry]:
        """Base entry, OUs, the service account and the default password policy."""
        ous = [(f"ou={ou},{self.base_dn}", [("objectClass", "organizationalUnit"), ("ou", ou)])
               for ou in ("people", "contractors", "groups", "services", "policies")]
        return [
            (self.base_dn, [("objectClass", "dcObject"), ("objectClass", "organization"),
                            ("dc", "example"), ("o", "Example Org")]),
            *ous,
            (self.service_dn, [("objectClass", "organizationalRole"), ("objectClass", "simpleSecurityObject"),
                               ("cn", "dash-app"), ("userPassword", ssha(self.service_password)),
                               ("description", "The account the Dash app searches the directory with")]),
            # ppolicy only honours pwdAccountLockedTime with a policy that has pwdLockout TRUE; with
            # pwdMaxFailure 0 wrong passwords never lock anyone out (nor write pwdFailureTime).
            (f"cn=default,{POLICIES_BASE}", [("objectClass", "organizationalRole"), ("objectClass", "pwdPolicy"),
                                             ("cn", "default"), ("pwdAttribute", "userPassword"),
                                             ("pwdLockout", "TRUE"), ("pwdMaxFailure", "0")]),
        ]
