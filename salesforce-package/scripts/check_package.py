#!/usr/bin/env python3
"""Offline checks of the Sextant SFDX package that no Salesforce tool runs without an org (stdlib only).

usage: check_package.py [package-root]      check salesforce-package/ (default: this script's parent)
       check_package.py --self-test         seed one fault per rule into a copy and require each be caught

Why: apex-ls resolves types and methods but not field names on standard objects or in SOQL, and none of
the offline tools knows the package's own rules. Each rule below guards a way the package failed before:

  apex-fields        every X__c / X__r / X__mdt / X__e named in Apex exists in the metadata, and fields in
                     SOQL, SObject constructors and typed variables exist on *that* object
  credential         the integration principal is held only by the integration permission set, the
                     viewer principal only by Sextant_User; only the platform-event subscriber and jobs
                     started from it create scoring jobs, only those jobs call the scoring endpoints, and
                     the only gateway call made as a user is the cross-sell card's read (callouts never
                     run as the user who edited a record)
  settings           the shipped Sextant_Setting.Default keeps within the platform limits (≤ 200 ids per
                     call, ≤ 100 callouts, callouts × timeout ≤ 120 000 ms, ≤ 5 attempts, delays ≤ 10 min)
                     and ships switched off; every object setting has a trigger and every trigger a setting
  permission-sets    custom permissions, custom metadata types, objects, tabs and credential principals
                     named in permission sets exist
  events             every platform event Apex publishes has a subscriber trigger; subscriber configs name
                     existing triggers
  deploy-order       every certificate an External Credential needs is created in a README step that
                     comes before the first `sf project deploy start`
  project            sfdx-project.json: release version name and number, scratch definition, well-formed
                     packageAliases, replacement files that exist
  tests              every non-test Apex class is exercised by name in some @IsTest class
  gateway-contract   every property openapi/gateway.json requires in a POST /v1/scores, /v1/sentiment,
                     /v1/propensity/{name}/scores or /v1/cross-sell answer is read by
                     SextantGatewayClient (optional ones it reads but the spec lacks are listed)
  limits             metadata text within Salesforce's lengths (labels 40, field descriptions 1000,
                     permission set descriptions 255, help 510, Text 255, API names 40), which only a
                     deploy would otherwise report
  labels             every text users read is a Custom Label: each label an LWC imports or Apex reads
                     exists, none is unused, LWC templates hold no literal text (text nodes and label,
                     title, alternative-text, aria-label, placeholder attributes), and Apex gives no
                     literal message to users or admins (auraError, AuraHandled/Config/ActionException,
                     the gateway client's failures, log rows)
  ui-metadata        the FlexiPage places components that exist and are exposed for its page type and
                     object; fields on layouts, related lists, list views, report types and FlexiPages
                     exist on their objects; report type tables resolve
  field-access       every custom field a user sees (LWC schema imports, layouts, list views, report
                     types, the invocable action's and controller's user-mode queries) is readable in
                     Sextant_User (Sextant_Admin for objects only admins read, the score log), so a
                     user with the permission set never meets a missing field
"""
import json
import pathlib
import re
import shutil
import sys
import tempfile
import xml.etree.ElementTree as ET

NS = "{http://soap.sforce.com/2006/04/metadata}"
# Each principal of the External Credential, and the permission sets that may grant it.
PRINCIPAL_HOLDERS = {
    "Sextant_Gateway_JWT-SextantIntegration": {"Sextant_Integration"},
    # The Account page's cross-sell card calls the gateway as the viewing user (a read, no save).
    "Sextant_Gateway_JWT-SextantViewer": {"Sextant_User"},
}
# Who may call each SextantGatewayClient method: the scoring calls only from the integration user's
# jobs, the cross-sell read only from the card's controller.
GATEWAY_CALLERS = {
    "fetchScores": {"SextantScoringService"},
    "sentiment": {"SextantSentimentQueueable"},
    "propensityScores": {"SextantPropensityQueueable"},
    "crossSell": {"SextantCrossSellController"},
}
# Classes allowed to create scoring jobs: the event subscriber and the jobs it starts.
JOB_CREATORS = {
    "SextantScoreRequestHandler",
    "SextantScoreFinalizer",
    "SextantScoreBatch",
    "SextantScoreQueueable",
    "SextantSentimentQueueable",
    "SextantPropensityQueueable",
}
SCORING_JOBS = ("SextantScoreQueueable", "SextantScoreBatch", "SextantSentimentQueueable", "SextantPropensityQueueable")
PLATFORM = {
    "records_per_callout": 200,
    "callouts": 100,
    "callout_budget_ms": 120000,
    "attempts": 5,
    "delay_minutes": 10,
}


class Package:
    """The parts of the package the rules read."""

    def __init__(self, root: pathlib.Path):
        self.root = root
        self.src = root / "force-app" / "main" / "default"
        self.fields: dict[str, set[str]] = {}
        self.relationships: dict[str, set[str]] = {}
        self.objects: set[str] = set()
        for obj_dir in sorted((self.src / "objects").glob("*")):
            obj = obj_dir.name
            if (obj_dir / f"{obj}.object-meta.xml").exists():
                self.objects.add(obj)
            self.fields[obj] = set()
            for f in obj_dir.glob("fields/*.field-meta.xml"):
                name = f.name.split(".")[0]
                self.fields[obj].add(name)
                doc = ET.parse(f).getroot()
                rel = doc.findtext(f"{NS}relationshipName")
                if rel:
                    # Child to parent (Account__r) and parent to child (Sextant_Scores__r).
                    self.relationships.setdefault(obj, set()).update({name[:-3] + "__r", rel + "__r"})
        self.classes = {p.stem: p.read_text(encoding="utf-8") for p in sorted(self.src.glob("classes/*.cls"))}
        self.triggers = {p.stem: p.read_text(encoding="utf-8") for p in sorted(self.src.glob("triggers/*.trigger"))}
        self.notes: list[str] = []

    def is_test(self, name: str) -> bool:
        return re.search(r"@IsTest", self.classes.get(name, ""), re.IGNORECASE) is not None

    def has_field(self, obj: str, field: str) -> bool:
        if not field.lower().endswith("__c"):
            return True  # standard field: not checkable offline
        return field.lower() in {f.lower() for f in self.fields.get(obj, set())}


def strip_apex(src: str) -> str:
    """Apex without comments and string literals (SOQL in [...] stays)."""
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    src = re.sub(r"//[^\n]*", " ", src)
    return re.sub(r"'(?:\\.|[^'\\])*'", "''", src)


def balanced(src: str, start: int) -> str:
    """The text inside the parenthesis that opens at src[start]."""
    depth = 0
    for i in range(start, len(src)):
        if src[i] == "(":
            depth += 1
        elif src[i] == ")":
            depth -= 1
            if depth == 0:
                return src[start + 1 : i]
    return src[start + 1 :]


def check_apex_fields(pkg: Package) -> list[str]:
    errors = []
    all_fields = {f.lower() for fs in pkg.fields.values() for f in fs}
    all_rels = {r.lower() for rs in pkg.relationships.values() for r in rs}
    objects = {o.lower() for o in pkg.objects}
    sobject_types = {o.lower(): o for o in pkg.fields} | {"account": "Account", "order": "Order"}
    sources = {**{f"classes/{k}.cls": v for k, v in pkg.classes.items()},
               **{f"triggers/{k}.trigger": v for k, v in pkg.triggers.items()}}
    for path, raw in sources.items():
        code = strip_apex(raw)
        for token in sorted(set(re.findall(r"\b\w+__(?:c|r|mdt|e)\b", code))):
            t = token.lower()
            if t.endswith("__c") and t not in all_fields and t not in objects:
                errors.append(f"{path}: {token} is no custom field or object in the package")
            elif t.endswith("__r") and t not in all_rels:
                errors.append(f"{path}: {token} is no relationship in the package")
            elif (t.endswith("__mdt") or t.endswith("__e")) and t not in objects:
                errors.append(f"{path}: {token} is no object in the package")
        # Fields in SOQL belong to the FROM object.
        for m in re.finditer(r"\[\s*SELECT\b(.*?)\bFROM\s+(\w+)(.*?)\]", code, re.S | re.I):
            obj = sobject_types.get(m.group(2).lower())
            if obj is None:
                continue
            for field in re.findall(r"(?<![.\w])(\w+__c)\b", m.group(1) + " " + m.group(3)):
                if not pkg.has_field(obj, field):
                    errors.append(f"{path}: SOQL on {obj} names {field}, which {obj} does not have")
        # Named arguments of SObject constructors belong to that SObject.
        for m in re.finditer(r"\bnew\s+(\w+)\s*\(", code):
            obj = sobject_types.get(m.group(1).lower())
            if obj is None:
                continue
            args = balanced(code, m.end() - 1)
            for field in re.findall(r"(?:^|,)\s*(\w+)\s*=(?!=)", args):
                if field.lower() != "id" and not pkg.has_field(obj, field):
                    errors.append(f"{path}: new {obj}(...) sets {field}, which {obj} does not have")
        # var.Field__c where var is declared with an SObject type (a name reused with several types in one
        # file passes when any of them has the field: the check does not follow scopes).
        declared: dict[str, set[str]] = {}
        for m in re.finditer(r"\b(\w+)\s+(\w+)\s*(?:=|;|:|,|\))", code):
            obj = sobject_types.get(m.group(1).lower())
            if obj is not None:
                declared.setdefault(m.group(2), set()).add(obj)
        for m in re.finditer(r"\b(\w+)\.(\w+__c)\b", code):
            types = declared.get(m.group(1), set())
            if types and not any(pkg.has_field(obj, m.group(2)) for obj in types):
                errors.append(f"{path}: {m.group(1)}.{m.group(2)}: {'/'.join(sorted(types))} has no field {m.group(2)}")
    return sorted(set(errors))


def check_credential(pkg: Package) -> list[str]:
    errors = []
    holders: dict[str, set[str]] = {}
    for ps in sorted(pkg.src.glob("permissionsets/*.permissionset-meta.xml")):
        doc = ET.parse(ps).getroot()
        for access in doc.iter(f"{NS}externalCredentialPrincipalAccesses"):
            if access.findtext(f"{NS}enabled") == "true":
                principal = access.findtext(f"{NS}externalCredentialPrincipal") or ""
                holders.setdefault(principal, set()).add(ps.name.split(".")[0])
    for principal, sets in sorted(holders.items()):
        allowed = PRINCIPAL_HOLDERS.get(principal, set())
        if not sets <= allowed:
            errors.append(
                f"permission sets holding the External Credential principal {principal}: {sorted(sets)}; "
                f"only {sorted(allowed)} may (callouts must not depend on the editing user)"
            )
    if "Sextant_Integration" not in holders.get("Sextant_Gateway_JWT-SextantIntegration", set()):
        errors.append("Sextant_Integration does not hold the SextantIntegration principal: scoring cannot call out")
    for name, raw in pkg.classes.items():
        if name == "SextantGatewayClient" or pkg.is_test(name):
            continue
        code = strip_apex(raw)
        for method, callers in GATEWAY_CALLERS.items():
            if name not in callers and re.search(rf"\bSextantGatewayClient\s*\.\s*{method}\s*\(", code):
                errors.append(
                    f"{name} calls SextantGatewayClient.{method}: only {sorted(callers)} may (the scoring "
                    "calls run as the integration user; a user's session may only read cross-sell)"
                )
    for name, raw in {**pkg.classes, **pkg.triggers}.items():
        if name in JOB_CREATORS or pkg.is_test(name):
            continue
        code = strip_apex(raw)
        for job in SCORING_JOBS:
            if re.search(rf"\bnew\s+{job}\s*\(", code):
                errors.append(
                    f"{name} creates a {job}: only {sorted(JOB_CREATORS)} may (publish a "
                    "Sextant_Score_Request__e instead, so the job runs as the integration user)"
                )
    return errors


def metadata_values(path: pathlib.Path) -> dict[str, str | None]:
    doc = ET.parse(path).getroot()
    out = {}
    for v in doc.iter(f"{NS}values"):
        value = v.find(f"{NS}value")
        out[v.findtext(f"{NS}field")] = None if value is None else value.text
    return out


def check_settings(pkg: Package) -> list[str]:
    errors = []
    path = pkg.src / "customMetadata" / "Sextant_Setting.Default.md-meta.xml"
    if not path.exists():
        return [f"{path}: missing (the package reads Sextant_Setting__mdt.Default)"]
    v = metadata_values(path)

    def num(field: str) -> float:
        try:
            return float(v.get(field) or "nan")
        except ValueError:
            return float("nan")

    def within(field: str, lo: float, hi: float) -> None:
        if not lo <= num(field) <= hi:
            errors.append(f"{path.name}: {field} = {v.get(field)} is outside {lo:g}..{hi:g}")

    within("Records_Per_Callout__c", 1, PLATFORM["records_per_callout"])
    within("Max_Callouts_Per_Job__c", 1, PLATFORM["callouts"])
    within("Callout_Timeout_Ms__c", 1000, PLATFORM["callout_budget_ms"])
    within("Max_Attempts__c", 1, PLATFORM["attempts"])
    within("Retry_Delay_Minutes__c", 0, PLATFORM["delay_minutes"])
    within("Change_Delay_Minutes__c", 0, PLATFORM["delay_minutes"])
    within("Backfill_Batch_Size__c", 1, num("Records_Per_Callout__c") * num("Max_Callouts_Per_Job__c"))
    budget = num("Max_Callouts_Per_Job__c") * num("Callout_Timeout_Ms__c")
    if not budget <= PLATFORM["callout_budget_ms"]:
        errors.append(
            f"{path.name}: Max_Callouts_Per_Job__c × Callout_Timeout_Ms__c = {budget:g} ms exceeds the "
            f"{PLATFORM['callout_budget_ms']} ms callout budget of a transaction"
        )
    if not 0 < num("Medium_Threshold__c") < num("High_Threshold__c") < 1:
        errors.append(f"{path.name}: thresholds must satisfy 0 < Medium < High < 1")
    if not (v.get("Nightly_Cron__c") or "").strip():
        errors.append(f"{path.name}: Nightly_Cron__c is empty")
    if v.get("Enabled__c") != "false":
        errors.append(f"{path.name}: the package must ship switched off (Enabled__c false)")

    handled = {}
    for name, raw in pkg.triggers.items():
        m = re.search(r"SextantChangeHandler\.run\(\s*(\w+)\.SObjectType", raw)
        if m:
            handled[m.group(1)] = name
    records = {}
    for rec in pkg.src.glob("customMetadata/Sextant_Object_Setting.*.md-meta.xml"):
        records[rec.name.split(".")[1]] = metadata_values(rec)
    for obj, trigger in sorted(handled.items()):
        if obj not in records:
            errors.append(f"triggers/{trigger}: no Sextant_Object_Setting.{obj} record configures it")
    for obj, values in sorted(records.items()):
        if obj not in handled:
            errors.append(f"Sextant_Object_Setting.{obj}: no trigger on {obj} calls SextantChangeHandler")
        for field in (values.get("Trigger_Fields__c") or "").split(","):
            if field.strip() and not pkg.has_field(obj, field.strip()):
                errors.append(f"Sextant_Object_Setting.{obj}: Trigger_Fields__c names missing {field.strip()}")
    return errors


def check_permission_sets(pkg: Package) -> list[str]:
    errors = []
    perms = {p.name.split(".")[0] for p in pkg.src.glob("customPermissions/*.customPermission-meta.xml")}
    creds = {}
    for c in pkg.src.glob("externalCredentials/*.externalCredential-meta.xml"):
        doc = ET.parse(c).getroot()
        creds[c.name.split(".")[0]] = {
            p.findtext(f"{NS}parameterName")
            for p in doc.iter(f"{NS}externalCredentialParameters")
            if p.findtext(f"{NS}parameterType") == "NamedPrincipal"
        }
    for ps in sorted(pkg.src.glob("permissionsets/*.permissionset-meta.xml")):
        doc = ET.parse(ps).getroot()
        for cp in doc.iter(f"{NS}customPermissions"):
            if cp.findtext(f"{NS}name") not in perms:
                errors.append(f"{ps.name}: custom permission {cp.findtext(f'{NS}name')} does not exist")
        for mdt in doc.iter(f"{NS}customMetadataTypeAccesses"):
            if mdt.findtext(f"{NS}name") not in pkg.objects:
                errors.append(f"{ps.name}: custom metadata type {mdt.findtext(f'{NS}name')} does not exist")
        for op in doc.iter(f"{NS}objectPermissions"):
            obj = op.findtext(f"{NS}object") or ""
            if obj.endswith("__c") and obj not in pkg.objects:
                errors.append(f"{ps.name}: object {obj} does not exist")
        for tab in doc.iter(f"{NS}tabSettings"):
            name = tab.findtext(f"{NS}tab") or ""
            if name.endswith("__c") and not (pkg.src / "tabs" / f"{name}.tab-meta.xml").exists():
                errors.append(f"{ps.name}: tab {name} does not exist")
        for access in doc.iter(f"{NS}externalCredentialPrincipalAccesses"):
            cred, _, principal = (access.findtext(f"{NS}externalCredentialPrincipal") or "").partition("-")
            if principal not in creds.get(cred, set()):
                errors.append(f"{ps.name}: principal {cred}-{principal} does not exist")
    used = set()
    for raw in pkg.classes.values():
        used |= set(re.findall(r"checkPermission\(\s*'(\w+)'", raw))
        used |= set(re.findall(r"PERMISSION\s*=\s*'(\w+)'", raw))
    for name in sorted(used - perms):
        errors.append(f"Apex checks custom permission {name}, which does not exist")
    return errors


def check_events(pkg: Package) -> list[str]:
    errors = []
    subscribed = {}
    for name, raw in pkg.triggers.items():
        m = re.search(r"\btrigger\s+\w+\s+on\s+(\w+__e)\b", raw, re.I)
        if m:
            subscribed[m.group(1).lower()] = name
    for name, raw in pkg.classes.items():
        for event in set(re.findall(r"\bnew\s+(\w+__e)\s*\(", strip_apex(raw))):
            if event.lower() not in subscribed and not pkg.is_test(name):
                errors.append(f"classes/{name}.cls publishes {event}, which no trigger subscribes to")
    for cfg in pkg.root.rglob("*.platformEventSubscriberConfig-meta.xml"):
        consumer = ET.parse(cfg).getroot().findtext(f"{NS}platformEventConsumer")
        if consumer not in pkg.triggers:
            errors.append(f"{cfg.name}: platformEventConsumer {consumer} is no trigger in the package")
    return errors


def check_deploy_order(pkg: Package) -> list[str]:
    errors = []
    readme = pkg.root / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    deploy_at = text.find("sf project deploy start")
    if deploy_at < 0:
        errors.append("README.md: no `sf project deploy start` step")
    for c in pkg.src.glob("externalCredentials/*.externalCredential-meta.xml"):
        for cert in ET.parse(c).getroot().iter(f"{NS}certificate"):
            name = cert.text or ""
            if any(pkg.src.glob(f"certs/{name}.crt-meta.xml")):
                continue
            at = text.find(name)
            if at < 0 or (deploy_at >= 0 and at > deploy_at):
                errors.append(
                    f"{c.name} needs certificate {name}, which is not in the source: README.md must create it "
                    "in a step before the first `sf project deploy start`"
                )
    return errors


def check_project(pkg: Package) -> list[str]:
    errors = []
    project = json.loads((pkg.root / "sfdx-project.json").read_text(encoding="utf-8"))
    packaged = [d for d in project.get("packageDirectories", []) if d.get("package")]
    if not packaged:
        errors.append("sfdx-project.json: no packaged directory")
    for d in packaged:
        name = d.get("versionName", "")
        if not name or re.search(r"skeleton|todo|draft|wip", name, re.I):
            errors.append(f"sfdx-project.json: versionName {name!r} is not fit for a release")
        if not re.fullmatch(r"\d+\.\d+\.\d+\.(NEXT|\d+)", d.get("versionNumber", "")):
            errors.append(f"sfdx-project.json: versionNumber {d.get('versionNumber')!r} is not major.minor.patch.build")
        definition = d.get("definitionFile")
        if not definition or not (pkg.root / definition).exists():
            errors.append(f"sfdx-project.json: definitionFile {definition!r} does not exist")
    aliases = project.get("packageAliases")
    if not isinstance(aliases, dict):
        errors.append("sfdx-project.json: packageAliases is missing")
    else:
        for alias, value in aliases.items():
            if not re.fullmatch(r"(0Ho|04t)[0-9A-Za-z]{12}([0-9A-Za-z]{3})?", str(value)):
                errors.append(f"sfdx-project.json: packageAliases.{alias} = {value!r} is no package (0Ho) or version (04t) id")
    for r in project.get("replacements", []):
        if not (pkg.root / r.get("filename", "")).exists():
            errors.append(f"sfdx-project.json: replacement file {r.get('filename')} does not exist")
        elif r.get("stringToReplace") not in (pkg.root / r["filename"]).read_text(encoding="utf-8"):
            errors.append(f"sfdx-project.json: {r['filename']} lacks {r.get('stringToReplace')!r}")
    return errors


def check_tests(pkg: Package) -> list[str]:
    tests = "\n".join(strip_apex(src) for name, src in pkg.classes.items() if pkg.is_test(name))
    return [
        f"classes/{name}.cls is named by no @IsTest class (coverage needs ≥ 75 %)"
        for name in sorted(pkg.classes)
        if not pkg.is_test(name) and not re.search(rf"\b{name}\b", tests)
    ]


# (root element, child) -> maximum length, as the Metadata API enforces them.
TEXT_LIMITS = {
    ("CustomField", "label"): 40,
    ("CustomField", "description"): 1000,
    ("CustomField", "inlineHelpText"): 510,
    ("CustomObject", "label"): 40,
    ("CustomObject", "pluralLabel"): 40,
    ("CustomObject", "description"): 1000,
    ("PermissionSet", "label"): 80,
    ("PermissionSet", "description"): 255,
    ("CustomPermission", "label"): 80,
    ("CustomPermission", "description"): 255,
}


def check_limits(pkg: Package) -> list[str]:
    errors = []
    for path in sorted(pkg.root.rglob("*-meta.xml")):
        if "node_modules" in path.parts:
            continue
        doc = ET.parse(path).getroot()
        kind = doc.tag.replace(NS, "")
        for child in doc:
            limit = TEXT_LIMITS.get((kind, child.tag.replace(NS, "")))
            if limit is not None and len(child.text or "") > limit:
                errors.append(f"{path.name}: <{child.tag.replace(NS, '')}> has {len(child.text)} characters, at most {limit}")
        if kind == "CustomField":
            name = path.name.split(".")[0]
            if len(re.sub(r"__c$", "", name)) > 40:
                errors.append(f"{path.name}: API name longer than 40 characters")
            length = int(doc.findtext(f"{NS}length") or 0)
            ftype = doc.findtext(f"{NS}type")
            if ftype == "Text" and not 1 <= length <= 255 or ftype == "LongTextArea" and not 256 <= length <= 131072:
                errors.append(f"{path.name}: {ftype} length {length} is out of range")
    return errors


def check_gateway_contract(pkg: Package) -> list[str]:
    spec_path = pkg.root.parent / "openapi" / "gateway.json"
    client = pkg.classes.get("SextantGatewayClient")
    if not spec_path.exists() or client is None:
        pkg.notes.append(f"gateway-contract: SKIPPED ({spec_path} or SextantGatewayClient not found)")
        return []
    schemas = json.loads(spec_path.read_text(encoding="utf-8"))["components"]["schemas"]
    # The JSON keys the parser reads: o.get('key'), o.containsKey('key'), required(o, 'key'),
    # requiredNumber(o, 'key', min, max).
    read = set(re.findall(r"(?:\.get|\.containsKey)\('(\w+)'\)|required(?:Number|List)?\(\w+, '(\w+)'", client))
    read = {a or b for a, b in read}
    errors = []
    known = {p for schema in schemas.values() for p in schema.get("properties", {})}
    answers = ("ScoreResponse", "RecordScore", "RecordError", "SentimentResponse", "TextSentiment",
               "PropensityScoreResponse", "PropensityScore", "PropensityRecordError", "ScoreFactor",
               "CrossSellResponse", "AccountCrossSell", "Suggestion", "Because", "CategoryGuess")
    for name in answers:
        schema = schemas.get(name, {})
        for prop in schema.get("required", []):
            if prop not in read:
                errors.append(f"openapi {name}.{prop} is required, but SextantGatewayClient never reads '{prop}'")
    extra = sorted(read - known)
    if extra:
        pkg.notes.append(
            f"gateway-contract: note: SextantGatewayClient also reads {extra}, which openapi/gateway.json does not list yet"
        )
    return errors


LABEL_ATTRIBUTES = ("label", "title", "alternative-text", "aria-label", "placeholder", "message")
# Calls whose message reaches a user or admin: exceptions shown on the record page or in a flow, the
# gateway client's failures (stored as the Account's status message) and log rows.
USER_MESSAGE_CALLS = (
    r"(?:auraError|new\s+(?:\w+\.)?(?:AuraHandled|Config|Action)Exception)\(\s*'"
    r"|\bfailure\(\s*'[^']*'\s*,\s*(?:true|false)\s*,\s*'"
    r"|SextantLog\.failure\(\s*[\w.\[\]]+\s*,\s*[\w.']+\s*,\s*'"
)
USER_PERMISSION_SET = "Sextant_User"
ADMIN_PERMISSION_SET = "Sextant_Admin"
# Classes whose queries run in user mode for users (their fields must be readable by Sextant_User).
USER_MODE_CLASSES = ("SextantGetScoreAction", "SextantScoreController")


def strip_comments(src: str) -> str:
    src = re.sub(r"/\*.*?\*/", " ", src, flags=re.S)
    return re.sub(r"//[^\n]*", " ", src)


def custom_labels(pkg: Package) -> dict[str, ET.Element]:
    out = {}
    for path in pkg.src.glob("labels/*.labels-meta.xml"):
        for label in ET.parse(path).getroot().iter(f"{NS}labels"):
            out[label.findtext(f"{NS}fullName") or ""] = label
    return out


def check_labels(pkg: Package) -> list[str]:
    errors = []
    labels = custom_labels(pkg)
    used: set[str] = set()
    for js in sorted(pkg.src.glob("lwc/*/*.js")):
        for name in re.findall(r"['\"]@salesforce/label/c\.(\w+)['\"]", js.read_text(encoding="utf-8")):
            used.add(name)
            if name not in labels:
                errors.append(f"lwc/{js.parent.name}/{js.name} imports label {name}, which labels/ does not define")
    sources = {**{f"classes/{k}.cls": v for k, v in pkg.classes.items()},
               **{f"triggers/{k}.trigger": v for k, v in pkg.triggers.items()}}
    for path, raw in sources.items():
        for name in re.findall(r"\bLabel\.(\w+)", strip_apex(raw)):
            used.add(name)
            if name not in labels:
                errors.append(f"{path} reads Label.{name}, which labels/ does not define")
        name = pathlib.Path(path).stem
        if not pkg.is_test(name) and re.search(USER_MESSAGE_CALLS, strip_comments(raw)):
            errors.append(f"{path} throws a literal message to users: use a Custom Label (SextantLabels.format)")
    for name in sorted(set(labels) - used):
        errors.append(f"label {name} is used nowhere (remove it or use it)")
    for name, label in labels.items():
        for tag, limit in (("fullName", 80), ("shortDescription", 80), ("value", 1000), ("categories", 255)):
            if len(label.findtext(f"{NS}{tag}") or "") > limit:
                errors.append(f"label {name}: <{tag}> longer than {limit} characters")
        if not (label.findtext(f"{NS}value") or "").strip():
            errors.append(f"label {name} has no value")
    for html in sorted(pkg.src.glob("lwc/*/*.html")):
        src = re.sub(r"<!--.*?-->", " ", html.read_text(encoding="utf-8"), flags=re.S)
        where = f"lwc/{html.parent.name}/{html.name}"
        for text in re.findall(r">([^<]+)<", src):
            literal = re.sub(r"\{[^}]*\}", " ", text)
            if re.search(r"[A-Za-z]", literal):
                errors.append(f"{where}: literal text {literal.strip()!r}: use a Custom Label")
        for attr, value in re.findall(rf"\s({'|'.join(LABEL_ATTRIBUTES)})=\"([^\"]*)\"", src):
            if re.search(r"[A-Za-z]", re.sub(r"\{[^}]*\}", " ", value)):
                errors.append(f"{where}: literal {attr}={value!r}: bind a Custom Label")
    return errors


def child_relationships(pkg: Package) -> dict[str, str]:
    """Parent-to-child relationship (Sextant_Scores__r) -> child object."""
    out = {}
    for obj in pkg.fields:
        for f in (pkg.src / "objects" / obj / "fields").glob("*.field-meta.xml"):
            rel = ET.parse(f).getroot().findtext(f"{NS}relationshipName")
            if rel:
                out[rel.lower() + "__r"] = obj
    return out


def lookup_target(pkg: Package, obj: str, field: str) -> str | None:
    path = pkg.src / "objects" / obj / "fields" / f"{field}.field-meta.xml"
    return ET.parse(path).getroot().findtext(f"{NS}referenceTo") if path.exists() else None


def field_type(pkg: Package, obj: str, field: str) -> str | None:
    path = pkg.src / "objects" / obj / "fields" / f"{field}.field-meta.xml"
    if not path.exists():
        return None
    doc = ET.parse(path).getroot()
    return "Required" if doc.findtext(f"{NS}required") == "true" else doc.findtext(f"{NS}type")


def shown_fields(pkg: Package) -> tuple[list[str], set[tuple[str, str, str]]]:
    """Errors for fields shown on metadata that do not exist, and the (object, field, where) shown."""
    errors: list[str] = []
    shown: set[tuple[str, str, str]] = set()
    children = child_relationships(pkg)

    def see(obj: str, field: str, where: str) -> None:
        if not field.lower().endswith("__c"):
            return  # standard field or column (ACCOUNT.NAME): not checkable offline
        if not pkg.has_field(obj, field):
            errors.append(f"{where}: {obj} has no field {field}")
        else:
            shown.add((obj, field, where))

    for lay in sorted(pkg.src.glob("layouts/*.layout-meta.xml")):
        obj = lay.name.split("-")[0]
        doc = ET.parse(lay).getroot()
        for item in doc.iter(f"{NS}layoutItems"):
            if item.findtext(f"{NS}field"):
                see(obj, item.findtext(f"{NS}field"), f"layouts/{lay.name}")
        for rl in doc.iter(f"{NS}relatedLists"):
            child, _, lookup = (rl.findtext(f"{NS}relatedList") or "").partition(".")
            if not lookup:
                continue  # a standard related list (RelatedActivityList)
            if child not in pkg.fields:
                errors.append(f"layouts/{lay.name}: related list on unknown object {child}")
                continue
            see(child, lookup, f"layouts/{lay.name}")
            for f in [x.text or "" for x in rl.iter(f"{NS}fields")] + [rl.findtext(f"{NS}sortField") or ""]:
                see(child, f, f"layouts/{lay.name} related list {child}")
    for lv in sorted(pkg.src.glob("objects/*/listViews/*.listView-meta.xml")):
        obj = lv.parent.parent.name
        doc = ET.parse(lv).getroot()
        for f in [c.text or "" for c in doc.iter(f"{NS}columns")] + [f.findtext(f"{NS}field") or "" for f in doc.iter(f"{NS}filters")]:
            see(obj, f, f"objects/{obj}/listViews/{lv.name}")
    for rt in sorted(pkg.src.glob("reportTypes/*.reportType-meta.xml")):
        doc = ET.parse(rt).getroot()
        base = doc.findtext(f"{NS}baseObject") or ""
        if base.endswith("__c") and base not in pkg.objects:
            errors.append(f"reportTypes/{rt.name}: base object {base} does not exist")
        for col in doc.iter(f"{NS}columns"):
            table = col.findtext(f"{NS}table") or ""
            obj = base
            for rel in table.split(".")[1:]:
                obj = children.get(rel.lower(), "")
            if not obj:
                errors.append(f"reportTypes/{rt.name}: table {table} does not resolve to an object")
                continue
            see(obj, col.findtext(f"{NS}field") or "", f"reportTypes/{rt.name}")
    lwc = {p.name: p for p in (pkg.src / "lwc").glob("*") if p.is_dir()}
    for fp in sorted(pkg.src.glob("flexipages/*.flexipage-meta.xml")):
        doc = ET.parse(fp).getroot()
        obj = doc.findtext(f"{NS}sobjectType") or ""
        page_type = doc.findtext(f"{NS}type") or ""
        target = {"RecordPage": "lightning__RecordPage", "AppPage": "lightning__AppPage", "HomePage": "lightning__HomePage"}.get(page_type)
        for cn in doc.iter(f"{NS}componentName"):
            ns, _, name = (cn.text or "").partition(":")
            if ns != "c":
                continue
            if name not in lwc:
                errors.append(f"flexipages/{fp.name}: component c:{name} is not in lwc/")
                continue
            meta = ET.parse(lwc[name] / f"{name}.js-meta.xml").getroot()
            targets = {t.text for t in meta.iter(f"{NS}target")}
            objects = {o.text for o in meta.iter(f"{NS}object")}
            if meta.findtext(f"{NS}isExposed") != "true" or (target and target not in targets):
                errors.append(f"flexipages/{fp.name}: c:{name} is not exposed for {target}")
            if objects and obj and obj not in objects:
                errors.append(f"flexipages/{fp.name}: c:{name} is not allowed on {obj} pages ({sorted(objects)})")
        for fi in doc.iter(f"{NS}fieldItem"):
            see(obj, (fi.text or "").removeprefix("Record."), f"flexipages/{fp.name}")
    return errors, shown


def check_ui_metadata(pkg: Package) -> list[str]:
    return shown_fields(pkg)[0]


def check_field_access(pkg: Package) -> list[str]:
    # Who sees an object: Sextant_User when it grants read on it (or it is a standard object),
    # otherwise the admins (the score log is theirs).
    readable: dict[str, set[str]] = {}
    objects: dict[str, set[str]] = {}
    for name in (USER_PERMISSION_SET, ADMIN_PERMISSION_SET):
        ps = pkg.src / "permissionsets" / f"{name}.permissionset-meta.xml"
        readable[name], objects[name] = set(), set()
        if ps.exists():
            doc = ET.parse(ps).getroot()
            for fp in doc.iter(f"{NS}fieldPermissions"):
                if fp.findtext(f"{NS}readable") == "true":
                    readable[name].add((fp.findtext(f"{NS}field") or "").lower())
            for op in doc.iter(f"{NS}objectPermissions"):
                if op.findtext(f"{NS}allowRead") == "true":
                    objects[name].add((op.findtext(f"{NS}object") or "").lower())

    def audience(obj: str) -> str:
        if not obj.endswith("__c") or obj.lower() in objects[USER_PERMISSION_SET]:
            return USER_PERMISSION_SET
        return ADMIN_PERMISSION_SET
    seen = set(shown_fields(pkg)[1])
    for js in sorted(pkg.src.glob("lwc/*/*.js")):
        for obj, rel, fld in re.findall(
            r"['\"]@salesforce/schema/(\w+)\.(?:(\w+)\.)?(\w+__c)['\"]", js.read_text(encoding="utf-8")
        ):
            # Case.Account.Churn_Score__c: a field of the parent through a standard lookup (named as
            # its object); a custom one (X__r) through its lookup field's target.
            if rel.endswith("__r"):
                target = lookup_target(pkg, obj, rel[:-3] + "__c")
                rel = target or rel
            seen.add((rel or obj, fld, f"lwc/{js.parent.name}/{js.name}"))
    sobjects = {o.lower(): o for o in pkg.fields} | {"account": "Account"}
    for name in USER_MODE_CLASSES:
        code = strip_apex(pkg.classes.get(name, ""))
        for m in re.finditer(r"\[\s*SELECT\b(.*?)\bFROM\s+(\w+)(.*?)\]", code, re.S | re.I):
            obj = sobjects.get(m.group(2).lower())
            if obj and re.search(r"WITH\s+USER_MODE", m.group(3), re.I):
                for fld in re.findall(r"(?<![.\w])(\w+__c)\b", m.group(1)):
                    seen.add((obj, fld, f"classes/{name}.cls"))
    errors = []
    for obj, fld, where in sorted(seen):
        if field_type(pkg, obj, fld) in ("MasterDetail", "Required"):
            continue  # no field-level security on these: readable with the object
        who = audience(obj)
        if f"{obj}.{fld}".lower() not in readable[who]:
            errors.append(f"{where} shows {obj}.{fld}, which {who} does not grant read on")
    return errors


RULES = {
    "apex-fields": check_apex_fields,
    "credential": check_credential,
    "settings": check_settings,
    "permission-sets": check_permission_sets,
    "events": check_events,
    "deploy-order": check_deploy_order,
    "project": check_project,
    "tests": check_tests,
    "limits": check_limits,
    "gateway-contract": check_gateway_contract,
    "labels": check_labels,
    "ui-metadata": check_ui_metadata,
    "field-access": check_field_access,
}


def run(root: pathlib.Path, quiet: bool = False) -> dict[str, list[str]]:
    pkg = Package(root)
    found = {rule: check(pkg) for rule, check in RULES.items()}
    if not quiet:
        for note in pkg.notes:
            print(note)
        for rule, errors in found.items():
            for e in errors:
                print(f"{rule}: {e}")
    return found


def edit(path: pathlib.Path, old: str, new: str) -> None:
    """Replaces every occurrence, so a key read in two places is gone from both."""
    text = path.read_text(encoding="utf-8")
    if old not in text:
        raise SystemExit(f"self-test: cannot seed fault, {old!r} not in {path}")
    path.write_text(text.replace(old, new), encoding="utf-8")


def self_test(root: pathlib.Path) -> int:
    """Each seeded fault must be reported by its rule; the clean package must pass."""
    src = "force-app/main/default"
    faults = {
        "apex-fields": [
            (f"{src}/classes/SextantScoringService.cls", "a.Sextant_CLV__c = ", "a.Sextant_CLVV__c = "),
            (f"{src}/classes/SextantTestSupport.cls", "Sextant_Status_At__c\n", "Sextant_Scored_By__c\n"),
        ],
        "credential": [
            (f"{src}/classes/SextantChangeHandler.cls", "if (!accountIds.isEmpty()) {",
             "if (!accountIds.isEmpty()) {\n System.enqueueJob(new SextantScoreQueueable(new List<Id>(accountIds), 'x'));"),
            (f"{src}/classes/SextantSentimentRequests.cls", "if (!caseIds.isEmpty()) {",
             "if (!caseIds.isEmpty()) {\n System.enqueueJob(new SextantSentimentQueueable(new List<Id>(caseIds)));"),
            (f"{src}/permissionsets/Sextant_User.permissionset-meta.xml",
             "Sextant_Gateway_JWT-SextantViewer", "Sextant_Gateway_JWT-SextantIntegration"),
            (f"{src}/permissionsets/Sextant_Admin.permissionset-meta.xml", "<description>",
             "<externalCredentialPrincipalAccesses><enabled>true</enabled><externalCredentialPrincipal>"
             "Sextant_Gateway_JWT-SextantViewer</externalCredentialPrincipal></externalCredentialPrincipalAccesses>"
             "<description>"),
            (f"{src}/classes/SextantCrossSellController.cls", "SextantGatewayClient.crossSell(",
             "SextantGatewayClient.fetchScores("),
        ],
        "settings": [
            (f"{src}/customMetadata/Sextant_Setting.Default.md-meta.xml",
             '<value xsi:type="xsd:double">20000</value>', '<value xsi:type="xsd:double">30000</value>'),
        ],
        "permission-sets": [
            (f"{src}/permissionsets/Sextant_User.permissionset-meta.xml",
             "<name>Sextant_Request_Rescore</name>", "<name>Sextant_Request_Rescor</name>"),
        ],
        "deploy-order": [
            (f"{src}/externalCredentials/Sextant_Gateway_JWT.externalCredential-meta.xml",
             "<certificate>Sextant_JWT_Signing</certificate>", "<certificate>Sextant_Other_Cert</certificate>"),
        ],
        "limits": [
            (f"{src}/permissionsets/Sextant_User.permissionset-meta.xml", "<description>Sales users:",
             "<description>" + "x" * 250 + " Sales users:"),
        ],
        "gateway-contract": [
            (f"{src}/classes/SextantGatewayClient.cls", "'record_id'", "'recordId'"),
            (f"{src}/classes/SextantGatewayClient.cls", "'intensity'", "'strength'"),
            (f"{src}/classes/SextantGatewayClient.cls", "'index'", "'position'"),
        ],
        "project": [("sfdx-project.json", '"versionName": "Sextant 1.0"', '"versionName": "Skeleton"')],
        "events": [
            (f"{src}/triggers/SextantScoreRequestTrigger.trigger",
             "on Sextant_Score_Request__e(", "on Account("),
        ],
        "labels": [
            (f"{src}/lwc/sextantScore/sextantScore.js", "c.Sextant_Why'", "c.Sextant_Whyy'"),
            (f"{src}/lwc/sextantScore/sextantScore.html", "{labels.why}", "Why"),
            (f"{src}/lwc/sextantCrossSell/sextantCrossSell.html", "{labels.noModel}", "No model yet"),
            (f"{src}/classes/SextantCrossSellController.cls", "System.Label.Sextant_Cross_Sell_Retry_After",
             "System.Label.Sextant_Cross_Sell_Retry_Aftr"),
            (f"{src}/lwc/sextantScore/sextantScore.html", "label={labels.rescore}", 'label="Re-score"'),
            (f"{src}/classes/SextantScoreController.cls", "throw auraError(System.Label.Sextant_Error_No_Permission);",
             "throw auraError('You need the permission');"),
            (f"{src}/classes/SextantGetScoreAction.cls", "System.Label.Sextant_Switched_Off", "System.Label.Sextant_Switched_Of"),
            (f"{src}/classes/SextantGatewayClient.cls", "System.Label.Sextant_Gateway_No_Scores",
             "'The gateway answer has no scores list'"),
            (f"{src}/classes/SextantNightlyRescore.cls", "(System.Label.Sextant_Error_Backfill_Switched_Off)", "('Switched off')"),
        ],
        "ui-metadata": [
            (f"{src}/flexipages/Sextant_Account_Record_Page.flexipage-meta.xml", "c:sextantScore<", "c:sextantScores<"),
            (f"{src}/layouts/Account-Sextant Account Layout.layout-meta.xml",
             "<field>Sextant_CLV__c</field>", "<field>Sextant_LTV__c</field>"),
            (f"{src}/layouts/Account-Sextant Account Layout.layout-meta.xml",
             "<fields>Band__c</fields>", "<fields>Bands__c</fields>"),
            (f"{src}/objects/Account/listViews/Sextant_High_Churn_Risk.listView-meta.xml",
             "<field>Sextant_Churn_Band__c</field>", "<field>Churn_Band__c</field>"),
            (f"{src}/reportTypes/Sextant_Score_History.reportType-meta.xml",
             "<table>Sextant_Score__c</table>", "<table>Sextant_Score__c.Scores__r</table>"),
            (f"{src}/lwc/sextantScore/sextantScore.js-meta.xml", "<object>Account</object>", "<object>Contact</object>"),
        ],
        "field-access": [
            (f"{src}/permissionsets/Sextant_User.permissionset-meta.xml",
             "<field>Account.Sextant_P_Alive__c</field>", "<field>Account.Sextant_Status_At__c</field>"),
            (f"{src}/permissionsets/Sextant_User.permissionset-meta.xml",
             "<field>Sextant_Score__c.Reason__c</field>", "<field>Sextant_Score__c.Scored_At__c</field>"),
            (f"{src}/lwc/sextantCaseSentiment/sextantCaseSentiment.js",
             "Case.Account.Sextant_Churn_Band__c", "Case.Account.Sextant_Score_Log_Id__c"),
        ],
    }
    if any(run(root, quiet=True).values()):
        print("self-test: the clean package does not pass; run without --self-test first")
        return 1
    failures = 0
    for rule, seeds in faults.items():
        for path, old, new in seeds:
            with tempfile.TemporaryDirectory() as tmp:
                copy = pathlib.Path(tmp) / "pkg"
                shutil.copytree(root, copy, ignore=shutil.ignore_patterns("node_modules", ".sfdx", ".sf", "coverage"))
                spec = root.parent / "openapi" / "gateway.json"
                if spec.exists():
                    (copy.parent / "openapi").mkdir(exist_ok=True)
                    shutil.copy(spec, copy.parent / "openapi" / "gateway.json")
                edit(copy / path, old, new)
                caught = run(copy, quiet=True)[rule]
                status = "caught" if caught else "MISSED"
                failures += 0 if caught else 1
                print(f"self-test {rule}: {status}: {path}: {old!r} -> {new!r}" + (f" ({caught[0]})" if caught else ""))
    print(f"self-test: {sum(len(s) for s in faults.values()) - failures} caught, {failures} missed")
    return 1 if failures else 0


def main() -> int:
    args = [a for a in sys.argv[1:] if a != "--self-test"]
    root = pathlib.Path(args[0]) if args else pathlib.Path(__file__).resolve().parent.parent
    if "--self-test" in sys.argv:
        return self_test(root)
    found = run(root)
    problems = sum(len(e) for e in found.values())
    print(f"sf-package: {len(RULES)} rules, {problems} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
