#!/usr/bin/env python3
"""Offline sanity checks for SFDX source metadata (stdlib only).

usage: check_sf_metadata.py <package-dir>   e.g. force-app
Checks: XML well-formed; metadata namespace; root element matches file suffix;
custom field <type> is a known value; cross-references between permission sets,
LWC imports, custom metadata records, Named Credentials and the files present.
Exit 1 on any problem.
"""
import pathlib
import re
import sys
import xml.etree.ElementTree as ET

NS = "http://soap.sforce.com/2006/04/metadata"
ROOT_BY_SUFFIX = {
    ".cls-meta.xml": "ApexClass",
    ".trigger-meta.xml": "ApexTrigger",
    ".field-meta.xml": "CustomField",
    ".object-meta.xml": "CustomObject",
    ".permissionset-meta.xml": "PermissionSet",
    ".md-meta.xml": "CustomMetadata",
    ".js-meta.xml": "LightningComponentBundle",
    ".namedCredential-meta.xml": "NamedCredential",
    ".externalCredential-meta.xml": "ExternalCredential",
    ".labels-meta.xml": "CustomLabels",
    ".flexipage-meta.xml": "FlexiPage",
    ".layout-meta.xml": "Layout",
    ".listView-meta.xml": "ListView",
    ".reportType-meta.xml": "ReportType",
}
FIELD_TYPES = {
    "AutoNumber", "Checkbox", "Currency", "Date", "DateTime", "Email", "EncryptedText",
    "Html", "Lookup", "MasterDetail", "MetadataRelationship", "MultiselectPicklist",
    "Number", "Percent", "Phone", "Picklist", "Text", "TextArea", "LongTextArea",
    "Time", "Url", "Location", "Summary", "Hierarchy", "ExternalLookup",
}

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "force-app")
errors = []


def q(tag):
    return f"{{{NS}}}{tag}"


def field_exists(obj, field):
    if not field.endswith("__c"):
        return True  # standard field: cannot check offline
    return any(root.glob(f"**/objects/{obj}/fields/{field}.field-meta.xml"))


classes = {p.name[: -len(".cls")]: p for p in root.glob("**/classes/*.cls")}

for path in sorted(root.rglob("*-meta.xml")):
    try:
        doc = ET.parse(path).getroot()
    except ET.ParseError as e:
        errors.append(f"{path}: not well-formed XML: {e}")
        continue
    if not doc.tag.startswith(f"{{{NS}}}"):
        errors.append(f"{path}: root <{doc.tag}> is not in namespace {NS}")
    for suffix, expected in ROOT_BY_SUFFIX.items():
        if path.name.endswith(suffix) and doc.tag != q(expected):
            errors.append(f"{path}: root element {doc.tag} but {suffix} needs <{expected}>")
    kind = doc.tag.split("}")[-1]
    if kind == "CustomField":
        t = doc.findtext(q("type"))
        if t is None or t not in FIELD_TYPES:
            errors.append(f"{path}: <type>{t}</type> is not a known field type")
    elif kind == "PermissionSet":
        for ca in doc.iter(q("apexClass")):
            if ca.text not in classes:
                errors.append(f"{path}: classAccesses names missing class {ca.text}")
        for f in doc.iter(q("field")):
            obj, _, fld = (f.text or "").partition(".")
            if not field_exists(obj, fld):
                errors.append(f"{path}: fieldPermissions names missing field {f.text}")
    elif kind == "CustomMetadata":
        mdt = path.name.split(".")[0] + "__mdt"
        for f in doc.iter(q("field")):
            if not field_exists(mdt, f.text or ""):
                errors.append(f"{path}: value for missing field {mdt}.{f.text}")

for js in root.glob("**/lwc/*/*.js"):
    src = js.read_text(encoding="utf-8")
    for cls, method in re.findall(r"['\"]@salesforce/apex/(\w+)\.(\w+)['\"]", src):
        body = classes[cls].read_text(encoding="utf-8") if cls in classes else ""
        pat = rf"@AuraEnabled[^\n]*\s+(?:public|global)\s+static\s+[\w<>,.\s]+?\b{method}\s*\("
        if not re.search(pat, body, re.IGNORECASE):
            errors.append(f"{js}: imports {cls}.{method}, which is no @AuraEnabled static method")
    for obj, fld in re.findall(r"['\"]@salesforce/schema/(\w+)\.(\w+)['\"]", src):
        if not field_exists(obj, fld):
            errors.append(f"{js}: imports missing field {obj}.{fld}")

creds = {p.name.split(".")[0] for p in root.glob("**/namedCredentials/*.namedCredential-meta.xml")}
for src in list(root.glob("**/classes/*.cls")) + list(root.glob("**/triggers/*.trigger")):
    for name in re.findall(r"'callout:(\w+)", src.read_text(encoding="utf-8")):
        if name not in creds:
            errors.append(f"{src}: callout:{name} has no namedCredentials/{name}.namedCredential-meta.xml")

for e in errors:
    print(e)
count = len(list(root.rglob("*-meta.xml")))
print(f"sf-metadata: {count} metadata files checked, {len(errors)} problems")
sys.exit(1 if errors else 0)
