"""Reaching the Hugging Face Hub: one quick reachability check instead of minutes of retries, and the
endpoint's name for messages.

Used for model weights (``vlbench.models.hub``) and for datasets (``--hf-hub``): when the Hub cannot be
reached, or $HF_HUB_OFFLINE is set, nothing waits on it; messages name the endpoint in use ($HF_ENDPOINT
where it is set, a mirror say, else the public Hub).
"""

from __future__ import annotations

import contextlib
import functools
import urllib.error
import urllib.request
from typing import Iterator

from vlbench.errors import VLBenchError

PROBE_TIMEOUT_S = 3.0


def _constants():  # late import: huggingface_hub is a dependency of open_clip and transformers
    from huggingface_hub import constants

    return constants


def offline_by_setting() -> bool:
    """$HF_HUB_OFFLINE (or $TRANSFORMERS_OFFLINE) as huggingface_hub read it."""
    return bool(_constants().HF_HUB_OFFLINE)


def endpoint() -> str:
    """The Hub's address as huggingface_hub uses it ($HF_ENDPOINT, else https://huggingface.co)."""
    return str(_constants().ENDPOINT).rstrip("/")


@functools.lru_cache(maxsize=1)
def hub_reachable() -> bool:
    """One HEAD request to the Hub endpoint (proxies from the environment apply), no retries; a Hub that
    accepts the connection and never answers counts as unreachable after PROBE_TIMEOUT_S."""
    try:
        urllib.request.urlopen(urllib.request.Request(endpoint(), method="HEAD"), timeout=PROBE_TIMEOUT_S).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


@contextlib.contextmanager
def hub_access() -> Iterator[str | None]:
    """Yields None when the Hub may be used, else why not ("HF_HUB_OFFLINE is set", "... cannot be reached").

    In the offline cases huggingface_hub's offline switch is on inside the block (restored after),
    so cached files load without a network request and missing ones fail without retries.
    """
    if offline_by_setting():
        yield "HF_HUB_OFFLINE is set"
        return
    if hub_reachable():
        yield None
        return
    constants = _constants()
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield f"the Hugging Face Hub at {endpoint()} cannot be reached"
    finally:
        constants.HF_HUB_OFFLINE = previous


def require_hub(what: str) -> None:
    """A one-line error, before any download starts, when the Hub cannot be used to fetch ``what``."""
    if offline_by_setting():
        raise VLBenchError(f"cannot download {what} from {endpoint()}: HF_HUB_OFFLINE is set; unset it, or put the data under the data root")
    if not hub_reachable():
        raise VLBenchError(f"cannot download {what}: the Hugging Face Hub at {endpoint()} cannot be reached (no answer within "
                           f"{PROBE_TIMEOUT_S:g} s); check the network or HF_ENDPOINT, or put the data under the data root")
