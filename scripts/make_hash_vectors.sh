#!/usr/bin/env bash
# Makes tests/vectors/imported_hashes.tsv: hashes of a few passwords in every foreign
# format that src/factors/password/imported.rs verifies, each made by the real tool that writes
# it in the wild (Django's hashers, passlib, Python's bcrypt, argon2-cffi, Apache's
# `htpasswd -B`), so the unit tests check the crate against those tools rather than
# against itself.
#
#   scripts/make_hash_vectors.sh
#
# Needs python3 (with venv) and PyPI; installs Debian's apache2-utils for htpasswd when
# it is missing (as root). The venv goes to target/hash-vectors-venv (HASH_VECTORS_VENV
# overrides). Salts are random, so every run writes different hashes; the script checks
# each hash with the tool that made it before writing it.
#
# Costs are low so the tests stay fast, except one row per tool at its own defaults
# (tool column `…@defaults`), kept only where a debug build verifies it well under a
# second.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${HASH_VECTORS_VENV:-target/hash-vectors-venv}"
out=tests/vectors/imported_hashes.tsv

if ! command -v htpasswd > /dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq apache2-utils > /dev/null
fi
htpasswd_version="$(dpkg-query -W -f '${Version}' apache2-utils 2> /dev/null || echo unknown)"

python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
    'Django==5.2.19' 'passlib==1.7.4' 'bcrypt==5.0.0' 'argon2-cffi==25.1.0'

mkdir -p "$(dirname "$out")"
HTPASSWD_VERSION="$htpasswd_version" "$venv/bin/python" - "$out" << 'PY'
import os
import subprocess
import sys
import warnings
from importlib import metadata

warnings.filterwarnings("ignore")

import argon2
import bcrypt
import django
from django.conf import settings

settings.configure(
    PASSWORD_HASHERS=[
        "django.contrib.auth.hashers.PBKDF2PasswordHasher",
        "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
        "django.contrib.auth.hashers.ScryptPasswordHasher",
        "django.contrib.auth.hashers.Argon2PasswordHasher",
        "django.contrib.auth.hashers.BCryptPasswordHasher",
        "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    ]
)
django.setup()

from django.contrib.auth import hashers as dj
from passlib import hash as ph

out = sys.argv[1]

PASSWORDS = [
    "correct horse battery staple",
    "pässwörd-ünïcode",
    "p@ss:w$rd with spaces",
]
# Longer than the 72 bytes bcrypt reads; the second one is cut in the middle of a
# two-byte character (byte 72 is the first byte of a "ü").
LONG = [
    "this password is longer than the seventy-two bytes bcrypt reads, so its tail is ignored",
    "a" + "ü" * 40,
]
for p in LONG:
    assert len(p.encode()) > 72, p
assert len(LONG[1].encode()[:72].decode("utf-8", "ignore").encode()) == 71

rows = []


def add(tool, fmt, password, hashed, check):
    assert "\t" not in password and "\n" not in password
    assert check(password, hashed), (tool, fmt, password, hashed)
    assert not check(password + "x", hashed), (tool, fmt, password, hashed)
    rows.append((tool, fmt, password, hashed))


# Django: each hasher's own encode/verify, at low costs and once at its defaults.
def django(hasher, fmt, password, defaults=False, **low):
    h = hasher()
    for name, value in low.items():
        if not defaults:
            setattr(h, name, value)
    tool = "django@defaults" if defaults else "django"
    add(tool, fmt, password, h.encode(password, h.salt()), lambda p, e: h.verify(p, e))


for p in PASSWORDS:
    django(dj.PBKDF2PasswordHasher, "django-pbkdf2-sha256", p, iterations=1000)
    django(dj.PBKDF2SHA1PasswordHasher, "django-pbkdf2-sha1", p, iterations=1000)
    django(dj.ScryptPasswordHasher, "django-scrypt", p, work_factor=2**10, parallelism=1)
    django(dj.Argon2PasswordHasher, "django-argon2", p, memory_cost=64, time_cost=1, parallelism=1)
    django(dj.BCryptPasswordHasher, "django-bcrypt", p, rounds=4)
    django(dj.BCryptSHA256PasswordHasher, "django-bcrypt-sha256", p, rounds=4)
# bcrypt_sha256 pre-hashes, so a long password is whole in it.
django(dj.BCryptSHA256PasswordHasher, "django-bcrypt-sha256", LONG[0], rounds=4)
# Not PBKDF2 at Django's default 1,000,000 iterations: its generic loop is compiled in
# the crate itself, unoptimized in a debug build, where that takes seconds.
for hasher, fmt in [
    (dj.ScryptPasswordHasher, "django-scrypt"),
    (dj.Argon2PasswordHasher, "django-argon2"),
    (dj.BCryptSHA256PasswordHasher, "django-bcrypt-sha256"),
]:
    django(hasher, fmt, PASSWORDS[0], defaults=True)

# passlib: its PHC-like pbkdf2 (adapted base64) and scrypt strings.
passlib_pbkdf2 = [
    (ph.pbkdf2_sha256, "passlib-pbkdf2-sha256"),
    (ph.pbkdf2_sha512, "passlib-pbkdf2-sha512"),
    (ph.pbkdf2_sha1, "passlib-pbkdf2-sha1"),
]
for p in PASSWORDS:
    for handler, fmt in passlib_pbkdf2:
        add("passlib", fmt, p, handler.using(rounds=1000).hash(p), handler.verify)
    low = ph.scrypt.using(rounds=10, block_size=8, parallelism=1)
    add("passlib", "scrypt", p, low.hash(p), ph.scrypt.verify)
# r and p other than 8 and 1, so their order in the string is tested.
add("passlib", "scrypt", PASSWORDS[1], ph.scrypt.using(rounds=9, block_size=4, parallelism=2).hash(PASSWORDS[1]), ph.scrypt.verify)
add("passlib@defaults", "passlib-pbkdf2-sha256", PASSWORDS[0], ph.pbkdf2_sha256.hash(PASSWORDS[0]), ph.pbkdf2_sha256.verify)
add("passlib@defaults", "scrypt", PASSWORDS[0], ph.scrypt.hash(PASSWORDS[0]), ph.scrypt.verify)

# Python's bcrypt (what Rails-era and Python apps store), with each prefix it writes.
def bcrypt_check(p, h):
    return bcrypt.checkpw(p.encode(), h.encode())


for p in PASSWORDS:
    for prefix in (b"2a", b"2b"):
        h = bcrypt.hashpw(p.encode(), bcrypt.gensalt(rounds=4, prefix=prefix)).decode()
        add("bcrypt", "bcrypt", p, h, bcrypt_check)
add("bcrypt@defaults", "bcrypt", PASSWORDS[0], bcrypt.hashpw(PASSWORDS[0].encode(), bcrypt.gensalt()).decode(), bcrypt_check)


# Apache's htpasswd -B ($2y$, as PHP's password_hash writes): it passes the password to
# crypt_blowfish, which reads at most 72 bytes and ignores the rest. Python's bcrypt 5
# refuses passwords over 72 bytes, so the long ones come from htpasswd alone, checked
# against Python's bcrypt with their first 72 bytes.
def htpasswd(password, cost=None):
    args = ["htpasswd", "-nbB"] + (["-C", str(cost)] if cost else []) + ["user", password]
    line = subprocess.run(args, check=True, capture_output=True).stdout.decode().strip()
    user, hashed = line.split(":", 1)
    assert user == "user" and hashed.startswith("$2y$"), line
    return hashed


def first_72_check(p, h):
    return bcrypt.checkpw(p.encode()[:72], h.encode())


for p in PASSWORDS:
    add("htpasswd", "bcrypt", p, htpasswd(p, cost=4), bcrypt_check)
for p in LONG:
    h = htpasswd(p, cost=4)
    assert first_72_check(p, h)
    assert not first_72_check(p[1:], h)
    rows.append(("htpasswd", "bcrypt", p, h))
add("htpasswd@defaults", "bcrypt", PASSWORDS[0], htpasswd(PASSWORDS[0]), bcrypt_check)

# argon2-cffi: Argon2 PHC strings of each type (what Python apps, passlib and Django's
# Argon2 hasher wrap).
def argon2_hash(password, kind, **costs):
    return argon2.PasswordHasher(type=kind, **costs).hash(password)


def argon2_check(p, h):
    try:
        return argon2.PasswordHasher().verify(h, p)
    except argon2.exceptions.VerificationError:
        return False


low = dict(memory_cost=64, time_cost=1, parallelism=1)
for p in PASSWORDS:
    add("argon2-cffi", "argon2id", p, argon2_hash(p, argon2.Type.ID, **low), argon2_check)
    add("argon2-cffi", "argon2i", p, argon2_hash(p, argon2.Type.I, **low), argon2_check)
    add("argon2-cffi", "argon2d", p, argon2_hash(p, argon2.Type.D, **low), argon2_check)
# Two lanes, a 16-byte hash (passlib's default length) and a 16-byte salt.
add("argon2-cffi", "argon2id", PASSWORDS[1], argon2_hash(PASSWORDS[1], argon2.Type.ID, memory_cost=64, time_cost=2, parallelism=2, hash_len=16), argon2_check)
add("argon2-cffi@defaults", "argon2id", PASSWORDS[0], argon2.PasswordHasher().hash(PASSWORDS[0]), argon2_check)

versions = ", ".join(
    "{} {}".format(name, metadata.version(name)) for name in ("Django", "passlib", "bcrypt", "argon2-cffi")
) + ", apache2-utils " + os.environ["HTPASSWD_VERSION"]
with open(out, "w", encoding="utf-8", newline="\n") as f:
    f.write("# Made by scripts/make_hash_vectors.sh ({}); do not edit.\n".format(versions))
    f.write("# Columns (tab-separated): tool, format (HashFormat::as_str), password, hash.\n")
    f.write("tool\tformat\tpassword\thash\n")
    for row in rows:
        f.write("\t".join(row) + "\n")
print("wrote {} vectors to {}".format(len(rows), out))
PY
