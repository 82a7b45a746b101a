"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

The OpenAPI documents mark Salesforce record ids with the custom string formats `salesforce-id`,
`salesforce-account-id` and `salesforce-org-id` next to their pattern. A pattern cannot say that an 18-character id's last three characters are
the case checksum of its first fifteen, which the services check (an id whose suffix does not
match was mangled and is refused): without this strategy, schemathesis would generate 18-character
ids with wrong suffixes as *valid* data and report their refusal. Here a valid id is 15 or 18
characters with the right suffix; the schema's own pattern (key prefix) still filters them, and
negative tests still come from the pattern and lengths.
"""

import schemathesis
from hypothesis import strategies as st
from hypothesis.internal import lambda_sources

# Python 3.11's `ast.parse`, deep in a stack, can raise `SystemError: AST constructor recursion
# depth mismatch` (a CPython bug); Hypothesis hits it only while *describing* a lambda for its
# reports, and schemathesis then aborts the operation as a runtime error. A description is not
# worth an aborted test: such a lambda is described as unknown instead.
_describe_lambda = lambda_sources._lambda_description


def _lambda_description(f, *args, **kwargs):
    try:
        return _describe_lambda(f, *args, **kwargs)
    except SystemError:
        return "lambda: <unknown>"


lambda_sources._lambda_description = _lambda_description

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
def _salesforce_ids(draw, prefixes):
    body = draw(st.sampled_from(prefixes)) + draw(
        st.text(alphabet=_ALNUM, min_size=12, max_size=12)
    )
    return body + _suffix(body) if draw(st.booleans()) else body


# Any object's id, an Account id (`001`), an organisation id (`00D`): a pattern's key prefix
# would filter out most ids of a generic strategy (and whole arrays of them).
schemathesis.openapi.format("salesforce-id", _salesforce_ids(_PREFIXES))
schemathesis.openapi.format("salesforce-account-id", _salesforce_ids(["001"]))
schemathesis.openapi.format("salesforce-org-id", _salesforce_ids(["00D"]))


def _whole_numbers_as_integers(value):
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**63:
        return int(value)
    if isinstance(value, list):
        return [_whole_numbers_as_integers(v) for v in value]
    if isinstance(value, dict):
        return {k: _whole_numbers_as_integers(v) for k, v in value.items()}
    return value


def _checksummed(value):
    """An 18-character id-shaped string (known key prefix) with its correct suffix."""
    if isinstance(value, str):
        if len(value) == 18 and value.isascii() and value.isalnum() and value[:3] in _PREFIXES:
            return value[:15] + _suffix(value[:15])
        return value
    if isinstance(value, list):
        return [_checksummed(v) for v in value]
    if isinstance(value, dict):
        return {k: _checksummed(v) for k, v in value.items()}
    return value


def _positive(case):
    meta = getattr(case, "meta", None)
    mode = getattr(getattr(meta, "generation", None), "mode", None)
    return getattr(mode, "name", "").upper() == "POSITIVE"


@schemathesis.hook
def before_call(ctx, case, **kwargs):
    """Two things JSON Schema cannot say, applied to the generated request before it is sent.

    - Whole numbers in JSON bodies go as integers (`320`, not `320.0`): JSON Schema counts `320.0`
      as an integer and schemathesis sends it for `type: integer`; the services read integer
      fields with serde, which takes JSON integers only (`400 invalid_json` for `320.0`).
    - In *valid* (positive) cases, an 18-character id gets its real checksum suffix: the coverage
      phase builds boundary strings from the pattern and lengths alone (e.g.
      `001000000000000000`), without the `salesforce-id` format's strategy above.
    """
    if isinstance(case.body, (dict, list)):
        case.body = _whole_numbers_as_integers(case.body)
    if _positive(case):
        if isinstance(case.body, (dict, list)):
            case.body = _checksummed(case.body)
        for attr in ("query", "path_parameters"):
            container = getattr(case, attr, None)
            if isinstance(container, dict):
                setattr(case, attr, _checksummed(container))
