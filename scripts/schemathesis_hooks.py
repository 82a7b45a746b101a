"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

The OpenAPI documents mark Salesforce record ids with the custom string format `salesforce-id`
next to their pattern. A pattern cannot say that an 18-character id's last three characters are
the case checksum of its first fifteen, which the services check (an id whose suffix does not
match was mangled and is refused): without this strategy, schemathesis would generate 18-character
ids with wrong suffixes as *valid* data and report their refusal. Here a valid id is 15 or 18
characters with the right suffix; the schema's own pattern (key prefix) still filters them, and
negative tests still come from the pattern and lengths.
"""

import schemathesis
from hypothesis import strategies as st

_ALNUM = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
# Key prefixes the documents name (Account, Contact, Opportunity, Organization, Product2, Case,
# Order, OrderItem, a custom object), so that a pattern's prefix matches often.
_PREFIXES = ["001", "003", "006", "00D", "01t", "500", "801", "802", "a00"]


def _suffix(id15: str) -> str:
    out = []
    for start in range(0, 15, 5):
        bits = 0
        for i, c in enumerate(id15[start : start + 5]):
            if "A" <= c <= "Z":
                bits |= 1 << i
        out.append(_SUFFIX[bits])
    return "".join(out)


@st.composite
def _salesforce_ids(draw):
    body = draw(st.sampled_from(_PREFIXES)) + draw(
        st.text(alphabet=_ALNUM, min_size=12, max_size=12)
    )
    return body + _suffix(body) if draw(st.booleans()) else body


schemathesis.openapi.format("salesforce-id", _salesforce_ids())
