#!/usr/bin/env python3
"""Intended Apex coverage without an org: which lines of the package's classes and triggers the
@IsTest methods reach, estimated statically (stdlib only).

usage: apex_intended_coverage.py [PACKAGE_DIR] [--min PERCENT] [--by-test]
       apex_intended_coverage.py --self-test

Why: Apex runs only in an org; offline (CI, a laptop) nothing executes Apex, so apex_coverage.py,
which reads an org's real test run, is skipped. This script gives the offline estimate that issue 9
asks for: it maps each test method to the methods it exercises and counts their lines.

What it is, honestly: a METHOD-LEVEL REACHABILITY ESTIMATE. A method that a test reaches counts all
its executable lines as covered; the script cannot see which branches a test takes, so a reached
method's untaken `if`/`catch` branches count as covered here and may not be in the org. Lines of
methods that no test reaches are uncovered. The org's number (apex_coverage.py) is the real one.

How a test reaches a method (followed transitively, to a fixpoint):
  - static calls `Class.method(` (also `Outer.Inner.method(`) and unqualified calls in the same class;
  - instance calls `v.method(` where v's type is known from a declaration (`Foo f = ...`, parameters,
    fields, for-loop variables), dispatched to the class and to every subclass or implementation that
    the reached code instantiates (`new X(`): rapid type analysis;
  - `new Foo(` runs Foo's constructors (all overloads: arguments are not typed) and field initialisers;
  - DML (insert/update/delete/upsert/undelete, statement or Database.*) of an SObject type runs the
    triggers on that type for that event; `EventBus.publish` of a platform event runs its triggers;
  - with `Test.stopTest()` in the test method: `System.enqueueJob(new X(...))` runs X.execute,
    `Database.executeBatch(new X())` X.start/execute/finish, `System.schedule(..., new X())` X.execute
    (an argument that is a variable of an interface type runs every instantiated implementation);
  - `System.attachFinalizer(new X(...))` runs X.execute;
  - `Test.setMock(HttpCalloutMock.class, new M())` runs M.respond once reached code sends an HTTP
    request (`.send(` on an Http).
Counted lines: the first line of each statement inside a method, constructor or trigger body, and field
initialisers (`= ...`); not comments, blank lines, braces-only lines, `else`/`try`/`catch`/`finally`/
`when` lines or declarations without executable code. Inner classes count under their outer class.
"""
import argparse
import os
import pathlib
import re
import sys
import tempfile

KEYWORDS = {
    "if", "for", "while", "switch", "catch", "return", "new", "throw", "else", "do", "try", "finally",
    "insert", "update", "delete", "upsert", "undelete", "merge", "when", "on", "super", "this", "final",
    "static", "public", "private", "protected", "global", "virtual", "abstract", "override", "transient",
    "with", "without", "sharing", "inherited", "class", "interface", "enum", "void", "instanceof",
    "testmethod", "webservice", "get", "set", "break", "continue", "null", "true", "false",
}
SKIP_LINE = re.compile(r"^(\}?\s*(else|try|finally)\s*\{?|\}?\s*catch\s*\(.*\)\s*\{?|when\b.*\{?|[{}();,\s]*)$")
DECL_ONLY = re.compile(r"^([\w.]+)(?:\s*<[\w.,\s<>]*>)?(?:\[\])?\s+\w+\s*;$")  # `Type name;`
DML = re.compile(r"(?<![\w.])(insert|update|delete|upsert|undelete)\s+([^;]+);")
DB_DML = re.compile(r"Database\s*\.\s*(insert|update|delete|upsert|undelete)(?:Immediate)?\s*\(\s*")
DECL = re.compile(
    r"(?<![\w.<])([A-Za-z_][\w.]*(?:\s*<[\w.,\s<>]*>)?(?:\[\])?)\s+([A-Za-z_]\w*)\s*(?=[=;,):])"
)
CALL = re.compile(r"(?<![\w.])((?:[A-Za-z_]\w*\s*\.\s*)*)([A-Za-z_]\w*)\s*\(")
NEW = re.compile(r"\bnew\s+([A-Za-z_][\w.]*)\s*(?:<[\w.,\s<>]*>)?\s*[({\[]")
ANNOTATION = re.compile(r"@\w+\s*\([^)]*\)")


def strip_code(text: str) -> str:
    """Comments and string literals become spaces; newlines stay, so line numbers hold."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c == "'":
            j = i + 1
            while j < n and text[j] != "'":
                j += 2 if text[j] == "\\" else 1
            out.append("''" + " " * (min(j, n - 1) - i - 1))
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def match_brace(text: str, open_at: int) -> int:
    depth = 0
    for k in range(open_at, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return k
    raise ValueError("unbalanced braces")


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def executable_lines(text: str, start: int, end: int) -> set[int]:
    """Lines in text[start:end] (a body without its braces) where a statement starts."""
    lines, first = set(), line_of(text, start)
    ended, parens = True, 0
    for k, raw in enumerate(text[start:end].split("\n")):
        s = raw.strip()
        if not s:
            continue
        decl = DECL_ONLY.match(s)
        if decl and decl.group(1).lower() in KEYWORDS:
            decl = None
        if ended and parens == 0 and not SKIP_LINE.match(s) and not decl:
            lines.add(first + k)
        parens += s.count("(") - s.count(")")
        ended = s[-1] in ";{}" or s.endswith("->")
    return lines


class Member:
    def __init__(self, cls, name, kind, ret, lines, body):
        self.cls, self.name, self.kind, self.ret, self.lines, self.body = cls, name, kind, ret, lines, body
        self.key = f"{cls.name}.{name}" if kind != "trigger" else name
        self.locals: dict[str, str] = {}


class ApexClass:
    def __init__(self, name, top, kind, header, is_test, unit):
        self.name, self.top, self.kind, self.is_test, self.unit = name, top, kind, is_test, unit
        m = re.search(r"\bextends\s+([\w.]+)", header)
        self.extends = m.group(1) if m else None
        m = re.search(r"\bimplements\s+([^{]+)", header)
        self.implements = [re.sub(r"<.*", "", t).strip() for t in m.group(1).split(",")] if m else []
        self.members: list[Member] = []
        self.fields: dict[str, str] = {}
        self.field_lines: set[int] = set()
        self.outer = None


class Trigger:
    def __init__(self, name, sobject, events, member):
        self.name, self.sobject, self.events, self.member = name, sobject, events, member


class Package:
    """Classes (by full name, inner ones as Outer.Inner) and triggers parsed from Apex sources."""

    def __init__(self, sources: dict[str, str]):
        self.classes: dict[str, ApexClass] = {}
        self.triggers: list[Trigger] = []
        self.units: dict[str, tuple[str, set[int]]] = {}  # unit -> (kind, executable lines)
        for name, text in sorted(sources.items()):
            code = strip_code(text)
            try:
                if name.endswith(".trigger"):
                    self._trigger(name[: -len(".trigger")], code)
                else:
                    self._top_class(name[: -len(".cls")], code)
            except ValueError as e:
                raise ValueError(f"{name}: {e}") from e

    def _trigger(self, name, code):
        m = re.search(r"\btrigger\s+(\w+)\s+on\s+(\w+)\s*\(([^)]*)\)\s*\{", code, re.IGNORECASE)
        if not m:
            raise ValueError("not a trigger")
        end = match_brace(code, m.end() - 1)
        cls = ApexClass(name, name, "trigger", "", False, name)
        lines = executable_lines(code, m.end(), end)
        member = Member(cls, name, "trigger", None, lines, code[m.end() : end])
        member.locals = declarations(member.body)
        cls.members.append(member)
        events = {" ".join(e.lower().split()) for e in m.group(3).split(",")}
        self.triggers.append(Trigger(name, m.group(2).lower(), events, member))
        self.units[name] = ("trigger", set(lines))

    def _top_class(self, name, code):
        m = re.search(r"\b(class|interface|enum)\s+(\w+)[^{]*\{", code, re.IGNORECASE)
        if not m:
            return
        is_test = re.search(r"@IsTest", code[: m.start()], re.IGNORECASE) is not None
        cls = ApexClass(m.group(2), m.group(2), m.group(1).lower(), code[m.start() : m.end()], is_test, m.group(2))
        self.classes[cls.name] = cls
        self._body(cls, code, m.end(), match_brace(code, m.end() - 1))
        if not is_test:
            lines = set()
            for c in self.classes.values():
                if c.top == cls.name:
                    lines |= c.field_lines
                    for mem in c.members:
                        lines |= mem.lines
            self.units[cls.name] = ("class", lines)

    def _body(self, cls, code, start, end):
        """Members of one class body: methods, constructors, fields, inner classes."""
        i, seg = start, start
        while i < end:
            c = code[i]
            if c == ";":
                header = code[seg:i]
                self._field(cls, code, seg, header)
                i += 1
                seg = i
                continue
            if c != "{":
                i += 1
                continue
            close = match_brace(code, i)
            header = ANNOTATION.sub(" ", code[seg:i])
            flat = " ".join(code[seg:i].split())
            inner = re.search(r"\b(class|interface|enum)\s+(\w+)", flat, re.IGNORECASE)
            if "=" in header:  # a field with a collection initialiser `= new List<T>{ ... }`
                i = close + 1
                continue
            if inner:
                kind = inner.group(1).lower()
                sub = ApexClass(f"{cls.top}.{inner.group(2)}", cls.top, kind, flat, cls.is_test, cls.unit)
                sub.outer = cls
                self.classes[sub.name] = sub
                if kind != "enum":
                    self._body(sub, code, i + 1, close)
            else:
                mm = re.search(r"([\w.<>\[\], ]*?)\b(\w+)\s*\(([^()]*(?:\([^()]*\)[^()]*)*)\)\s*$", flat)
                if mm and mm.group(2).lower() not in KEYWORDS:
                    words = [w for w in re.split(r"\s+", mm.group(1).strip()) if w]
                    words = [w for w in words if w.lower() not in KEYWORDS and not w.startswith("@")]
                    simple = cls.name.split(".")[-1]
                    is_ctor = mm.group(2) == simple and not words
                    member = Member(
                        cls,
                        "<init>" if is_ctor else mm.group(2),
                        "ctor" if is_ctor else "method",
                        None if is_ctor else (words[-1] if words else None),
                        executable_lines(code, i + 1, close),
                        code[i + 1 : close],
                    )
                    member.annotations = flat.lower()
                    member.locals = declarations(mm.group(3) + ";" + member.body)
                    cls.members.append(member)
                else:  # a static initialiser, or a property's accessors: their code runs with the class
                    cls.field_lines |= executable_lines(code, i + 1, close)
            i = close + 1
            seg = i
        return cls

    def _field(self, cls, code, seg, header):
        header = ANNOTATION.sub(lambda m: " " * len(m.group(0)), header)
        flat = " ".join(header.split())
        for t, v in DECL.findall(flat + ";"):
            if t.lower() not in KEYWORDS:
                cls.fields.setdefault(v, t)
        if "=" in header and "(" not in header.split("=")[0]:
            first = seg + len(header) - len(header.lstrip())
            cls.field_lines.add(line_of(code, first))

    # -- type resolution -------------------------------------------------------------------------
    def resolve(self, name, ctx):
        if not name:
            return None
        name = re.sub(r"\s+", "", re.sub(r"<.*", "", name))
        if name in self.classes:
            return self.classes[name]
        c = ctx
        while c is not None:
            if f"{c.top}.{name}" in self.classes:
                return self.classes[f"{c.top}.{name}"]
            c = c.outer
        return None

    def supers(self, cls):
        """cls, then its superclasses."""
        seen = []
        while cls is not None and cls not in seen:
            seen.append(cls)
            cls = self.resolve(cls.extends, cls)
        return seen

    def is_subtype(self, cls, target) -> bool:
        """Whether cls is target (an ApexClass or a platform interface's simple name)."""
        for c in self.supers(cls):
            if c is target:
                return True
            for i in c.implements:
                ri = self.resolve(i, c)
                if ri is target or (isinstance(target, str) and i.split(".")[-1] == target):
                    return True
                if ri is not None and ri.kind == "interface" and self.is_subtype(ri, target):
                    return True
        return False

    def lookup(self, cls, name):
        for c in self.supers(cls):
            found = [m for m in c.members if m.name == name]
            if found:
                return found
        return []

    def dispatch(self, static_type, name, instantiated):
        """Members a call `x.name(` may run when x is declared `static_type`."""
        out = list(self.lookup(static_type, name)) if isinstance(static_type, ApexClass) else []
        for c in instantiated:
            if c is not static_type and self.is_subtype(c, static_type):
                out += self.lookup(c, name)
        return out


def declarations(text: str) -> dict[str, str]:
    out = {}
    for t, v in DECL.findall(" ".join(text.split())):
        if t.lower() not in KEYWORDS and v.lower() not in KEYWORDS:
            out.setdefault(v, t)
    return out


def element_type(t):
    """Account for Account, List<Account>, Account[], Map<Id, Account>."""
    if not t:
        return None
    t = t.replace(" ", "").replace("[]", "")
    m = re.match(r"^[\w.]+<(.*)>$", t)
    if m:
        return element_type(m.group(1).split(",")[-1])
    return t


def arg_text(body: str, start: int) -> str:
    """The text of the argument list that starts at body[start] (after the `(`)."""
    depth = 1
    for k in range(start, len(body)):
        depth += {"(": 1, ")": -1}.get(body[k], 0)
        if depth == 0:
            return body[start:k]
    return body[start:]


class Analysis:
    """What each test method reaches."""

    def __init__(self, pkg: Package):
        self.pkg = pkg

    def var_type(self, member, var):
        if var in member.locals:
            return member.locals[var]
        for c in self.pkg.supers(member.cls):
            o = c
            while o is not None:
                if var in o.fields:
                    return o.fields[var]
                o = o.outer
        return None

    def expr_type(self, member, expr):
        """The declared type of a simple expression (new T(...), a variable, v[0], m(...))."""
        expr = expr.strip()
        m = re.match(r"^new\s+([\w.]+(?:\s*<[\w.,\s<>]*>)?)", expr)
        if m:
            return m.group(1)
        m = re.match(r"^([A-Za-z_]\w*)\s*(\[.*\])?\s*$", expr)
        if m:
            t = self.var_type(member, m.group(1))
            return element_type(t) if m.group(2) and t else t
        m = re.match(r"^((?:\w+\s*\.\s*)*)(\w+)\s*\(", expr)
        if m:
            targets = self.call_targets(member, m.group(1), m.group(2), set())
            if targets and targets[0].ret:
                return targets[0].ret
        return None

    def call_targets(self, member, qual, name, instantiated):
        pkg, ctx = self.pkg, member.cls
        parts = [p.strip() for p in qual.split(".") if p.strip()]
        if not parts:
            for c in [ctx] + [o for o in iter_outer(ctx)]:
                found = pkg.dispatch(c, name, instantiated)
                if found:
                    return found
            return []
        if parts[0] in ("this", "super") and len(parts) == 1:
            start = ctx if parts[0] == "this" else pkg.resolve(ctx.extends, ctx)
            return pkg.dispatch(start, name, instantiated) if start else []
        if parts[0] == "this":
            parts = parts[1:]
        cls = pkg.resolve(".".join(parts), ctx)
        if cls is not None and ".".join(parts) not in member.locals:
            return pkg.lookup(cls, name)
        if len(parts) == 1:
            t = pkg.resolve(self.var_type(member, parts[0]), ctx)
            if t is not None:
                return pkg.dispatch(t, name, instantiated)
            t = self.var_type(member, parts[0])
            if t and t.split(".")[-1] in {"Queueable", "Schedulable", "Finalizer", "HttpCalloutMock"}:
                return [
                    m for c in instantiated if pkg.is_subtype(c, t.split(".")[-1]) for m in pkg.lookup(c, name)
                ]
        return []

    def job_classes(self, member, arg, iface, instantiated):
        """Classes a job argument (`new X(...)` or a variable) may be."""
        t = self.expr_type(member, arg.split(",")[-1] if iface == "Schedulable" else arg.split(",")[0])
        cls = self.pkg.resolve(t, member.cls)
        if cls is not None and cls.kind != "interface":
            return [cls] + [c for c in instantiated if c is not cls and self.pkg.is_subtype(c, cls)]
        target = cls if cls is not None else iface
        return [c for c in instantiated if self.pkg.is_subtype(c, target)]

    def reach(self, roots, runs_async):
        """Members reached from roots, to a fixpoint."""
        reached, instantiated, mocks = set(), set(), set()
        work = list(roots)
        cache = {}  # a member's edges change only when the instantiated classes or mocks do
        changed = True
        while changed:
            changed = False
            for m in list(work):
                if m not in reached:
                    reached.add(m)
                    changed = True
            work = []
            for m in list(reached):
                key = (m, len(instantiated), len(mocks))
                if key not in cache:
                    cache[key] = self.edges(m, instantiated, mocks, runs_async)
                for t in cache[key]:
                    if isinstance(t, ApexClass):
                        if t not in instantiated:
                            instantiated.add(t)
                            changed = True
                    elif isinstance(t, tuple):
                        if t[1] not in mocks:
                            mocks.add(t[1])
                            changed = True
                    elif t not in reached:
                        work.append(t)
                        changed = True
        # a class's field initialisers run when it is instantiated or any of its members runs
        return reached, {m.cls for m in reached} | instantiated

    def edges(self, m, instantiated, mocks, runs_async):
        pkg, body, out = self.pkg, m.body, []
        for nm in NEW.finditer(body):
            cls = pkg.resolve(nm.group(1), m.cls)
            if cls is not None and cls.kind == "class":
                out.append(cls)
                out += [x for c in pkg.supers(cls) for x in c.members if x.kind == "ctor"]
        for cm in CALL.finditer(body):
            qual, name = cm.group(1), cm.group(2)
            before = body[max(0, cm.start() - 4) : cm.start()]
            if name.lower() in KEYWORDS or before.endswith("new "):
                continue
            if re.sub(r"\s", "", qual) in ("System.", "Test.", "Database.", "EventBus."):
                self.platform(m, re.sub(r"\s", "", qual) + name, arg_text(body, cm.end()), instantiated,
                              mocks, runs_async, out)
                continue
            if name == "send" and qual:
                recv = re.sub(r"\s", "", qual)[:-1]
                if recv == "newHttp()" or (self.var_type(m, recv) or "").endswith("Http") or \
                        body[max(0, cm.start() - 12) : cm.start()].replace(" ", "").endswith("newHttp()."):
                    for mock in mocks:
                        out += pkg.lookup(mock, "respond")
                    continue
            out += self.call_targets(m, qual, name, instantiated)
        if body.replace(" ", "").find("newHttp().send(") >= 0:
            for mock in mocks:
                out += pkg.lookup(mock, "respond")
        for dm in DML.finditer(body):
            out += self.fire(m, dm.group(1), dm.group(2))
        for dm in DB_DML.finditer(body):
            out += self.fire(m, dm.group(1), arg_text(body, dm.end()).split(",")[0])
        # the class's field initialisers run with any of its members
        return out

    def fire(self, m, op, expr):
        t = element_type(self.expr_type(m, expr))
        if not t:
            return []
        ops = {"upsert": ("insert", "update")}.get(op, (op,))
        return [
            tr.member
            for tr in self.pkg.triggers
            if tr.sobject == t.split(".")[-1].lower()
            and any(e.endswith(" " + o) for e in tr.events for o in ops)
        ]

    def platform(self, m, call, args, instantiated, mocks, runs_async, out):
        pkg = self.pkg
        if call == "EventBus.publish":
            out += self.fire(m, "insert", args)
        elif call == "Test.setMock" and "HttpCalloutMock" in args.split(",")[0]:
            for cls in self.job_classes(m, args.split(",", 1)[1], "HttpCalloutMock", instantiated):
                out.append(("mock", cls))
        elif call == "System.attachFinalizer":
            for cls in self.job_classes(m, args, "Finalizer", instantiated):
                out += pkg.lookup(cls, "execute")
        elif runs_async and call == "System.enqueueJob":
            for cls in self.job_classes(m, args, "Queueable", instantiated):
                out += pkg.lookup(cls, "execute")
        elif runs_async and call == "Database.executeBatch":
            for cls in self.job_classes(m, args, "Batchable", instantiated):
                out += pkg.lookup(cls, "start") + pkg.lookup(cls, "execute") + pkg.lookup(cls, "finish")
        elif runs_async and call == "System.schedule":
            for cls in self.job_classes(m, args, "Schedulable", instantiated):
                out += pkg.lookup(cls, "execute")


def iter_outer(cls):
    o = cls.outer
    while o is not None:
        yield o
        o = o.outer


def tests_of(pkg: Package):
    """(test name, roots, runs async) for each @IsTest method; @TestSetup methods run before each."""
    out = []
    for cls in pkg.classes.values():
        if not cls.is_test or cls.outer is not None:
            continue
        setup = [m for m in cls.members if "@testsetup" in getattr(m, "annotations", "")]
        for m in cls.members:
            ann = getattr(m, "annotations", "")
            if m.kind == "method" and ("@istest" in ann or "testmethod" in ann.split()):
                runs_async = re.search(r"Test\s*\.\s*stopTest\s*\(", m.body) is not None
                out.append((f"{cls.name}.{m.name}", setup + [m], runs_async))
    return out


def analyse(pkg: Package):
    """unit -> (kind, executable lines, reached lines, unreached members, tests reaching it); and
    test -> units it reaches."""
    an = Analysis(pkg)
    reached_members, reached_classes, by_test = set(), set(), {}
    for name, roots, runs_async in tests_of(pkg):
        r, rc = an.reach(roots, runs_async)
        reached_members |= r
        reached_classes |= rc
        by_test[name] = sorted({x.cls.unit for x in r if not x.cls.is_test})
    report = {}
    for unit, (kind, lines) in sorted(pkg.units.items()):
        hit, missed = set(), []
        for cls in pkg.classes.values():
            if cls.unit != unit and not (kind == "trigger" and cls.name == unit):
                continue
            if cls in reached_classes:
                hit |= cls.field_lines
            elif cls.field_lines:
                missed.append(f"{cls.name} field initialisers ({len(cls.field_lines)} lines)")
        members = [tr.member for tr in pkg.triggers if tr.name == unit] if kind == "trigger" else [
            m for c in pkg.classes.values() if c.unit == unit for m in c.members
        ]
        for m in members:
            if m in reached_members:
                hit |= m.lines
            elif m.lines:
                missed.append(f"{m.key} ({len(m.lines)} lines)")
        tests = sum(1 for units in by_test.values() if unit in units)
        report[unit] = (kind, lines, hit & lines, missed, tests)
    return report, by_test


def read_package(package: pathlib.Path) -> dict[str, str]:
    sources = {}
    for pattern in ("*.cls", "*.trigger"):
        for path in sorted(package.rglob(pattern)):
            if "node_modules" not in path.parts:
                sources[path.name] = path.read_text(encoding="utf-8")
    return sources


def print_report(report, minimum, out=sys.stdout) -> int:
    print("Intended Apex coverage (method-level reachability estimate: a method a test reaches counts all", file=out)
    print("its executable lines; untaken branches are not seen; the org's test run is the real number)", file=out)
    print(f"{'class/trigger':40} {'lines':>6} {'reached':>8} {'%':>7} {'tests':>6}", file=out)
    total = hit = 0
    failing = []
    for unit, (kind, lines, reached, missed, tests) in report.items():
        pct = 100.0 * len(reached) / len(lines) if lines else 100.0
        total += len(lines)
        hit += len(reached)
        mark = "" if pct >= minimum else "  < min"
        print(f"{unit:40} {len(lines):6} {len(reached):8} {pct:6.1f}% {tests:6}{mark}", file=out)
        if pct < minimum:
            failing.append((unit, missed))
    pct = 100.0 * hit / total if total else 100.0
    print(f"{'TOTAL':40} {total:6} {hit:8} {pct:6.1f}%", file=out)
    print("(tests: the @IsTest methods that reach the class or trigger)", file=out)
    for unit, missed in failing:
        print(f"{unit} is below {minimum:g} %; methods no test reaches:", file=out)
        for m in missed:
            print(f"  - {m}", file=out)
        if not missed:
            print("  (none)", file=out)
    if pct < minimum and not failing:
        failing.append(("TOTAL", []))
    return 1 if failing else 0


# -- self-test ---------------------------------------------------------------------------------
SELF_TEST = {
    "Util.cls": """
public class Util {
    public static Integer twice(Integer x) {
        // a comment is not a line, nor a declaration without a value
        Integer z;
        Integer y = x * 2;

        return y;
    }
    public static Integer never(Integer x) {
        Integer y = x + 1;
        y = y + 2;
        return y;
    }
}""",
    "Counter.cls": """
public class Counter {
    private Integer n = 0;
    public Counter() {
        n = 1;
    }
    public Integer bump() {
        n++;
        return n;
    }
    public void unused() {
        n = 0;
    }
}""",
    "AccountHandler.cls": """
public class AccountHandler {
    public static void run(List<Account> rows) {
        for (Account a : rows) {
            System.debug(a);
        }
    }
}""",
    "Job.cls": """
public class Job implements Queueable {
    private List<Id> ids;
    public Job(List<Id> ids) {
        this.ids = ids;
    }
    public void execute(QueueableContext context) {
        if (ids.isEmpty()) {
            return;
        } else {
            Util.twice(
                ids.size()
            );
        }
    }
}""",
    "Other.cls": """
public class Other {
    public static void alone() {
        System.debug('x { y');
    }
}""",
    "AccountTrigger.trigger": """
trigger AccountTrigger on Account(after insert) {
    AccountHandler.run(Trigger.new);
}""",
    "Pinger.cls": """
public class Pinger {
    public static void ping() {
        List<Ping__e> events = new List<Ping__e>{ new Ping__e() };
        EventBus.publish(events);
    }
    public static void handle(List<Ping__e> rows) {
        HttpRequest req = new HttpRequest();
        HttpResponse res = new Http().send(req);
    }
}""",
    "PingTrigger.trigger": """
trigger PingTrigger on Ping__e(after insert) {
    Pinger.handle(Trigger.new);
}""",
    "Mock.cls": """
public class Mock implements HttpCalloutMock {
    public HttpResponse respond(HttpRequest req) {
        return new HttpResponse();
    }
}""",
    "Sweep.cls": """
public class Sweep implements Database.Batchable<SObject> {
    public Database.QueryLocator start(Database.BatchableContext bc) {
        return Database.getQueryLocator('SELECT Id FROM Account');
    }
    public void execute(Database.BatchableContext bc, List<SObject> scope) {
        delete scope;
    }
    public void finish(Database.BatchableContext bc) {
        System.debug('done');
    }
}""",
    "Shapes.cls": """
public class Shapes {
    public interface Shape {
        Integer area();
    }
    public class Square implements Shape {
        public Integer area() {
            return 4;
        }
    }
    public class Circle implements Shape {
        public Integer area() {
            return 3;
        }
    }
}""",
    "TheTest.cls": """
@IsTest
private class TheTest {
    private static Account make() {
        return new Account(Name = 'a');
    }
    @IsTest
    static void staticAndInstance() {
        System.assertEquals(4, Util.twice(2));
        Counter c = new Counter();
        System.assertEquals(2, c.bump());
    }
    @IsTest
    static void triggerAndQueueable() {
        insert make();
        Test.startTest();
        System.enqueueJob(new Job(new List<Id>()));
        Test.stopTest();
    }
    @IsTest
    static void eventCalloutBatchInterface() {
        Test.setMock(HttpCalloutMock.class, new Mock());
        Test.startTest();
        Pinger.ping();
        Database.executeBatch(new Sweep(), 200);
        Test.stopTest();
        Shapes.Shape s = new Shapes.Square();
        System.assertEquals(4, s.area());
    }
}""",
}
SELF_TEST_EXPECTED = {
    # unit: (executable lines, reached lines)
    "Util": (5, 2),  # twice: 2 statements; never: 3
    "Counter": (5, 4),  # field initialiser, ctor 1, bump 2, unused 1
    "AccountHandler": (2, 2),  # the for line and its body (reached through the trigger)
    "Job": (4, 4),  # ctor 1; execute: if, return, Util.twice (one statement over 3 lines)
    "Other": (1, 0),
    "AccountTrigger": (1, 1),
    "Pinger": (4, 4),  # ping through the test, handle through the platform event's trigger
    "PingTrigger": (1, 1),
    "Mock": (1, 1),  # respond: the mock the test set, once Pinger.handle sends a request
    "Sweep": (3, 3),  # start, execute, finish under Test.stopTest
    "Shapes": (2, 1),  # Square.area through the Shape interface; Circle is never instantiated
}


def self_test() -> int:
    pkg = Package(SELF_TEST)
    report, by_test = analyse(pkg)
    problems = []
    for unit, (lines, hit) in SELF_TEST_EXPECTED.items():
        kind, all_lines, reached, missed, _ = report[unit]
        if (len(all_lines), len(reached)) != (lines, hit):
            problems.append(f"{unit}: {len(all_lines)} lines, {len(reached)} reached; expected {lines}, {hit}")
    if set(report) != set(SELF_TEST_EXPECTED):
        problems.append(f"units {sorted(report)}")
    if "Util.never (3 lines)" not in report["Util"][3] or "Counter.unused (1 lines)" not in report["Counter"][3]:
        problems.append(f"unreached methods not listed: {report['Util'][3]} {report['Counter'][3]}")
    if by_test["TheTest.staticAndInstance"] != ["Counter", "Util"]:
        problems.append(f"staticAndInstance reaches {by_test['TheTest.staticAndInstance']}")
    if by_test["TheTest.triggerAndQueueable"] != ["AccountHandler", "AccountTrigger", "Job", "Util"]:
        problems.append(f"triggerAndQueueable reaches {by_test['TheTest.triggerAndQueueable']}")
    if "Shapes.Circle.area (1 lines)" not in report["Shapes"][3]:
        problems.append(f"an implementation never instantiated counts as reached: {report['Shapes'][3]}")
    # without Test.stopTest the queued job never runs
    no_stop = dict(SELF_TEST)
    no_stop["TheTest.cls"] = SELF_TEST["TheTest.cls"].replace("Test.stopTest();", "")
    if analyse(Package(no_stop))[0]["Job"][2] != {5}:  # only the constructor's statement
        problems.append("a queueable ran without Test.stopTest")
    # the threshold: Util (40 %) and Other (0 %) fail at the default, everything passes at 0
    with open(os.devnull, "w", encoding="utf-8") as sink:
        if print_report(report, 90.0, sink) != 1 or print_report(report, 0.0, sink) != 0:
            problems.append("exit status does not follow --min")
    # a real package directory round-trips through the file reader
    with tempfile.TemporaryDirectory() as d:
        for name, text in SELF_TEST.items():
            (pathlib.Path(d) / name).write_text(text, encoding="utf-8")
        if analyse(Package(read_package(pathlib.Path(d))))[0].keys() != report.keys():
            problems.append("reading files differs from reading sources")
    for p in problems:
        print(f"self-test FAILED: {p}")
    if not problems:
        print(f"self-test passed ({len(SELF_TEST_EXPECTED)} units, every rule)")
    return 1 if problems else 0


def main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("package", nargs="?", default=str(pathlib.Path(__file__).resolve().parent.parent))
    ap.add_argument("--min", type=float, default=90.0, help="least %% per class and in total (default 90)")
    ap.add_argument("--by-test", action="store_true", help="also list the classes each test method reaches")
    ap.add_argument("--self-test", action="store_true")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    source = pathlib.Path(args.package) / "force-app"
    if not source.is_dir():
        print(f"no force-app directory under {args.package}", file=sys.stderr)
        return 2
    try:
        pkg = Package(read_package(source))
    except ValueError as e:  # a source this parser cannot read is a failure, never a silent 100 %
        print(f"cannot parse the Apex sources: {e}", file=sys.stderr)
        return 2
    report, by_test = analyse(pkg)
    if args.by_test:
        for t, units in sorted(by_test.items()):
            print(f"{t}: {', '.join(units)}")
    return print_report(report, args.min)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
