"""Whether an inbound email shows it comes from its sender: the SPF and DKIM verdicts Inbound Parse gives.

Inbound Parse posts `SPF` (the verdict for the envelope sender's domain: pass, fail, softfail,
neutral, none, temperror, permerror) and `dkim` (each signature's domain and verdict, as
`{@example.com : pass, @esp.example : fail}`). An email passes when SPF passes or a DKIM signature
of the sender's own domain (or a parent of it) passes; a signature of some other domain proves only
that someone at that domain sent it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: One DKIM result in Inbound Parse's `dkim` field: `@domain : verdict`.
_DKIM_RESULT = re.compile(r"@?([A-Za-z0-9.-]+)\s*:\s*([A-Za-z]+)")


@dataclass(frozen=True)
class SenderCheck:
    """What the receiving server found about the sender, and whether it is enough to act on the email."""

    spf: str
    dkim: str
    verified: bool

    def describe(self) -> str:
        return f"SPF {self.spf}, DKIM {self.dkim}"


def check_sender(sender: str, spf: str | None, dkim: str | None) -> SenderCheck:
    """Read Inbound Parse's verdicts for an email from `sender` (an address)."""
    domain = sender.rpartition("@")[2].strip().lower().rstrip(".")
    spf_verdict = (spf or "").strip().lower().split(" ")[0] or "none"
    signatures = [(d.lower().rstrip("."), verdict.lower()) for d, verdict in _DKIM_RESULT.findall(dkim or "")]
    own = [verdict for signer, verdict in signatures if _aligned(domain, signer)]
    dkim_verdict = "pass" if "pass" in own else (own[0] if own else "none" if not signatures else "other domain")
    return SenderCheck(
        spf=spf_verdict, dkim=dkim_verdict, verified=bool(domain) and (spf_verdict == "pass" or dkim_verdict == "pass")
    )


def _aligned(domain: str, signer: str) -> bool:
    """A signature speaks for the sender's domain when it is that domain or a parent of it (DMARC's relaxed mode)."""
    return bool(signer) and "." in signer and (domain == signer or domain.endswith("." + signer))
