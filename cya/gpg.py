"""gpg for one config: duplicity's encryption, and cya's own small encrypted objects.

gpg needs an agent, and an agent that gpg starts itself inherits gpg's environment —
with duplicity's ``PASSPHRASE`` in it — and outlives the run. So cya starts the agent
first, from an environment without the secret:

* passphrase (and no-encryption) mode: a private gpg home of the run, in a short path
  under the temp dir, with ``no-symkey-cache`` (the agent keeps no passphrase either);
  stopped and removed when the run ends, and — if cya was killed — by the next
  command's sweep (it is listed in cya/runs.py before it exists);
* gpg-key mode: the user's own agent and keyring (it holds the key).

cya's own objects (a backup's file index, the config copy in the bucket) are encrypted
the same way the tree is: with the passphrase (handed to gpg through a pipe, never
argv or environment) or to the gpg key; with no encryption they stay as they are.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from cya import execute
from cya.config import Settings
from cya.errors import CommandFailed
from cya.fsutil import remove_tree
from cya.runs import Run, cache_base

AGENT_CONF = "gpg.conf"
# gpg's own strongest count, the one it calibrates to on any recent machine; giving it
# spares the agent of every run that calibration (about 1.5 s, measured): no weaker
S2K_COUNT = "65011712"
GPG_OPTIONS = ["--s2k-count", S2K_COUNT]


class Gpg:
    def __init__(self, settings: Settings, passphrase: str | None):
        self.settings = settings
        self.passphrase = passphrase
        self.home: Path | None = None

    def __enter__(self) -> Gpg:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def mode(self) -> str:
        return self.settings.encryption.mode

    def env(self) -> dict[str, str]:
        """What a child that runs gpg needs in its environment (the agent is started
        first, without the secret)."""
        if self.mode == "gpg-key":
            execute.run(["gpgconf", "--launch", "gpg-agent"], remove_env=["PASSPHRASE"])
            return {}
        if self.home is None:
            home = Path(tempfile.mkdtemp(prefix="cya-gnupg-"))
            Run.current().own(home, gnupg=True)
            (home / AGENT_CONF).write_text("no-symkey-cache\n")
            self.home = home
            execute.run(["gpgconf", "--homedir", str(home), "--launch", "gpg-agent"],
                        remove_env=["PASSPHRASE"])
        return {"GNUPGHOME": str(self.home)}

    def close(self) -> None:
        """Stop the private agent and remove the private gpg home."""
        if self.home is not None:
            stop_agent(self.home)
            remove_tree(self.home)
            Run.current().disown(self.home)
            self.home = None

    def encrypt(self, data: bytes) -> bytes:
        """``data`` encrypted as the tree is (unchanged with no encryption)."""
        if self.mode == "none":
            return data
        if self.mode == "gpg-key":
            return self._gpg(["--trust-model", "always", "--encrypt", "--recipient",
                              self.settings.encryption.gpg_key], data, "encrypt")
        return self._gpg([*GPG_OPTIONS, "--symmetric", "--cipher-algo", "AES256"], data,
                         "encrypt", secret=self.passphrase or "")

    def decrypt(self, data: bytes) -> bytes:
        if self.mode == "none":
            return data
        return self._gpg(["--decrypt"], data, "decrypt", secret=self.passphrase or "")

    def _gpg(self, args: list[str], data: bytes, doing: str, secret: str | None = None
             ) -> bytes:
        work = Run.current().own(cache_base() / f"gpg-{secrets.token_hex(6)}")
        work.mkdir(mode=0o700)
        read_end = None
        try:
            (work / "in").write_bytes(data)
            argv = ["gpg", "--batch", "--yes", "--no-tty", "--quiet",
                    "--output", str(work / "out")]
            fds = []
            if secret is not None:
                read_end, write_end = os.pipe()
                os.write(write_end, secret.encode())
                os.close(write_end)
                argv += ["--pinentry-mode", "loopback", "--passphrase-fd", str(read_end)]
                fds.append(read_end)
            done = execute.run([*argv, *args, str(work / "in")], env=self.env(),
                               remove_env=["PASSPHRASE"], pass_fds=fds, timeout=600)
            if not done.ok:
                wrong = any("Bad session key" in line for line in done.tail)
                raise CommandFailed(
                    f"gpg could not {doing} " + ("with this passphrase (wrong passphrase?)"
                                                 if wrong else "an object"),
                    "check encryption in the config", "\n".join(done.tail))
            return (work / "out").read_bytes()
        finally:
            if read_end is not None:
                os.close(read_end)
            remove_tree(work)
            Run.current().disown(work)


def stop_agent(home: Path) -> None:
    """Stop the gpg agent of a private gpg home (nothing happens if none runs)."""
    if (home / AGENT_CONF).exists():
        execute.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"],
                    remove_env=["PASSPHRASE"], timeout=30)
