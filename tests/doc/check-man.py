#!/usr/bin/env python3
"""The reference-documentation gate for libacme's man pages.

    check-man.py SOURCE_DIR                 check pages against the headers
    check-man.py SOURCE_DIR --extract DIR   write every C example to DIR
    check-man.py SOURCE_DIR --compile CC... check, then compile every example
                                            against SOURCE_DIR/include (syntax)

What "check" asserts, each failure naming the page and the difference:

 1. Every function declared with ACME_EXPORT in include/acme/*.h has a page
    doc/man/<name>.3: a page of its own, or a ".so" alias whose target's
    NAME section lists the name. Every alias points at an existing page
    that lists it.
 2. Every page lists, in SYNOPSIS, the prototype of each function its NAME
    section names, and every prototype, typedef (struct, enum, function
    pointer) and #define shown in a SYNOPSIS is, whitespace-normalized,
    the one in the header the SYNOPSIS includes.
 3. Every page in doc/man/ is installed: named in doc/man/meson.build.
 4. Pages use only the man(7) macros this project's pages are written in
    (so a typo such as ".Sh" is caught here, not by a reader).
 5. Every page renders with `groff -man -Tutf8 -ww -z` without a warning
    (skipped, with a note, where groff is not installed).

Examples: the .EX/.EE blocks of every page's EXAMPLES section, and every
```c block of doc/*.md that is a complete program (has main()). A man page
example without main() is a translation unit of its own (a module, a
storage table) and is compiled with -c. Python 3 standard library only.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

ALLOWED_MACROS = {
    "TH", "SH", "SS", "PP", "LP", "P", "TP", "IP", "HP", "RS", "RE", "B", "I", "BI", "IB",
    "BR", "RB", "IR", "RI", "nf", "fi", "EX", "EE", "br", "sp", "so", "in", "ne", "UR", "UE",
    "MT", "ME", "TQ", "ad", "na", "hy", "nh", "\\\"",
}


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def norm(s):
    """Whitespace-normalized C: one space between words, none around punctuation."""
    s = re.sub(r"\s+", " ", s.strip())
    s = re.sub(r"\s*([()\[\]{},;*])\s*", r"\1", s)
    return s


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


# ---- the headers ---------------------------------------------------------

class Headers:
    def __init__(self, inc_dir):
        self.funcs = {}     # name -> (header, normalized prototype, raw prototype)
        self.types = {}     # typedef name -> (header, normalized text)
        self.defines = {}   # macro -> (header, normalized value)
        for fn in sorted(os.listdir(inc_dir)):
            if not fn.endswith(".h"):
                continue
            raw = read(os.path.join(inc_dir, fn))
            for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?[ \t]+([^\n]*)$",
                                 raw, flags=re.M):
                val = strip_comments((m.group(2) or "") + " " + m.group(3))
                self.defines[m.group(1)] = (fn, norm(val))
            text = strip_comments(raw)
            text = re.sub(r"^[ \t]*#[^\n]*(?:\\\n[^\n]*)*", "", text, flags=re.M)
            for m in re.finditer(r"\bACME_EXPORT\b\s*([^;{}]*?\b([A-Za-z_]\w*)\s*\([^;{}]*\))\s*;", text):
                self.funcs[m.group(2)] = (fn, norm(m.group(1)), " ".join(m.group(1).split()))
            for name, body in typedefs(text):
                self.types[name] = (fn, norm(body))


def typedefs(text):
    """(name, text) of every typedef with a body or of a function pointer."""
    out = []
    for m in re.finditer(r"\btypedef\s+(struct|enum)\s+(\w+)\s*\{[^{}]*\}\s*(\w+)\s*;", text):
        out.append((m.group(3), m.group(0)))
    for m in re.finditer(r"\btypedef\s[^;{}]*?\(\s*\*\s*(\w+)\s*\)\s*\([^;{}]*\)\s*;", text):
        out.append((m.group(1), m.group(0)))
    return out


# ---- the pages -----------------------------------------------------------

def unescape(line):
    """roff text of this project's pages -> the characters it renders."""
    line = re.sub(r"\\f(\[[^\]]*\]|\([A-Za-z]{2}|[A-Za-z0-9])", "", line)
    repl = {"\\-": "-", "\\e": "\\", "\\&": "", "\\(aq": "'", "\\(dq": '"', "\\(ga": "`",
            "\\(ti": "~", "\\(ha": "^", "\\ ": " ", "\\~": " ", "\\|": "", "\\^": "", "\\%": "",
            "\\(em": "--", "\\(en": "-", "\\(bu": "*", "\\[aq]": "'", "\\[dq]": '"'}
    return re.sub(r"\\\(..|\\\[..\]|\\.", lambda m: repl.get(m.group(0), m.group(0)), line)


def macro_args(rest):
    """Arguments of a font macro line, quotes honoured."""
    args = re.findall(r'"((?:[^"]|"")*)"|(\S+)', rest)
    return [a if a else b for a, b in args]


class Page:
    def __init__(self, path):
        self.path = path
        self.file = os.path.basename(path)
        self.text = read(path)
        self.so = None
        lines = self.text.splitlines()
        real = [l for l in lines if l.strip() and not l.startswith('.\\"')]
        if len(real) == 1 and real[0].startswith(".so "):
            self.so = real[0][4:].strip()
        self.sections = {}
        cur = None
        for line in lines:
            if line.startswith(".SH"):
                cur = unescape(" ".join(macro_args(line[3:]))).upper()
                self.sections[cur] = []
            elif cur is not None:
                self.sections[cur].append(line)

    def names(self):
        text = " ".join(self.sections.get("NAME", []))
        head = text.split("\\-", 1)[0]
        return [unescape(n).strip() for n in head.split(",") if n.strip()]

    def plain(self, section, nofill_only=False):
        """A section as plain text, macros dropped, font macro arguments kept
        (with nofill_only: only the .nf/.fi blocks, where SYNOPSIS code is)."""
        out = []
        nf = False
        for line in self.sections.get(section, []):
            if line.startswith(".nf"):
                nf = True
            elif line.startswith(".fi"):
                nf = False
            if nofill_only and not nf:
                continue
            if line.startswith(".") or line.startswith("'"):
                m = re.match(r"[.'](\S+)\s*(.*)", line)
                if m and m.group(1) in ("B", "I", "BI", "IB", "BR", "RB", "IR", "RI"):
                    out.append(unescape("".join(macro_args(m.group(2)))))
                else:
                    out.append("")
            else:
                out.append(unescape(line))
        return "\n".join(out)

    def examples(self):
        blocks, cur = [], None
        for line in self.sections.get("EXAMPLES", []):
            if line.startswith(".EX"):
                cur = []
            elif line.startswith(".EE"):
                if cur is not None:
                    blocks.append("\n".join(cur) + "\n")
                cur = None
            elif cur is not None:
                cur.append(unescape(line))
        return blocks


def load_pages(man_dir):
    pages = {}
    for fn in sorted(os.listdir(man_dir)):
        if re.search(r"\.[1-8]$", fn):
            pages[fn] = Page(os.path.join(man_dir, fn))
    return pages


def check(src):
    errs = []
    hdr = Headers(os.path.join(src, "include", "acme"))
    man_dir = os.path.join(src, "doc", "man")
    pages = load_pages(man_dir)

    # 4. macros
    for fn, p in pages.items():
        for i, line in enumerate(p.text.splitlines(), 1):
            m = re.match(r"\.(\S+)", line)
            if m and m.group(1) not in ALLOWED_MACROS and not m.group(1).startswith('\\"'):
                errs.append(f"{fn}:{i}: macro .{m.group(1)} is not one the pages use (man(7))")

    # 1. aliases point at pages that list them
    listed = {}
    for fn, p in pages.items():
        if p.so:
            target = os.path.basename(p.so)
            want = fn.rsplit(".", 1)[0]
            if not p.so.startswith("man3/") and not p.so.startswith("man1/"):
                errs.append(f"{fn}: .so {p.so}: write it as man3/<page>.3 (man-db resolves it from the man root)")
            if target not in pages or pages[target].so:
                errs.append(f"{fn}: .so target {p.so} is not a page in doc/man")
            elif want not in pages[target].names():
                errs.append(f"{fn}: alias for {want}, but {target}'s NAME section does not list {want}")
        else:
            if "NAME" not in p.sections or "SYNOPSIS" not in p.sections and fn.endswith(".3"):
                errs.append(f"{fn}: needs NAME and SYNOPSIS sections")
            for n in p.names():
                listed.setdefault(n, fn)

    # 1. every export has a page file and is listed in a NAME section
    for name in sorted(hdr.funcs):
        if name not in listed:
            errs.append(f"{name} ({hdr.funcs[name][0]}): no man page lists it in NAME; "
                        f"write doc/man/{name}.3 or add it to a grouped page")
        if name + ".3" not in pages:
            errs.append(f"{name}: no doc/man/{name}.3 (page or '.so man3/<page>.3' alias), "
                        f"so `man {name}` finds nothing")

    # 2. synopses
    for fn, p in pages.items():
        if p.so or "SYNOPSIS" not in p.sections or not fn.endswith(".3"):
            continue
        syn = strip_comments(p.plain("SYNOPSIS", nofill_only=True))
        includes = re.findall(r"#include\s*<acme/(\w+\.h)>", syn)
        for h in includes:
            if not os.path.exists(os.path.join(src, "include", "acme", h)):
                errs.append(f"{fn}: SYNOPSIS includes <acme/{h}>, which does not exist")
        allowed_h = set(includes)
        if "acme.h" in allowed_h:
            allowed_h = None  # includes everything

        def from_header(what, h):
            if allowed_h is not None and h not in allowed_h:
                errs.append(f"{fn}: {what} is declared in <acme/{h}>, which the SYNOPSIS does not include")

        for m in re.finditer(r"^[ \t]*#[ \t]*define[ \t]+(\w+)(\([^)]*\))?[ \t]+([^\n]*)$", syn, flags=re.M):
            name, val = m.group(1), norm((m.group(2) or "") + " " + m.group(3))
            if name not in hdr.defines:
                errs.append(f"{fn}: SYNOPSIS defines {name}, which no header defines")
            elif hdr.defines[name][1] != val:
                errs.append(f"{fn}: #define {name}: page has '{val}', header has '{hdr.defines[name][1]}'")
            else:
                from_header(name, hdr.defines[name][0])
        body = re.sub(r"^[ \t]*#[^\n]*", "", syn, flags=re.M)
        for name, text in typedefs(body):
            if name not in hdr.types:
                errs.append(f"{fn}: SYNOPSIS shows typedef {name}, which no header has")
            elif hdr.types[name][1] != norm(text):
                errs.append(f"{fn}: typedef {name} differs from <acme/{hdr.types[name][0]}>:\n"
                            f"    page:   {norm(text)}\n    header: {hdr.types[name][1]}")
            else:
                from_header(name, hdr.types[name][0])
        body = re.sub(r"\btypedef\s+(struct|enum)\s+\w+\s*\{[^{}]*\}\s*\w+\s*;", " ", body)
        body = re.sub(r"\btypedef\s[^;]*;", " ", body)
        shown = set()
        for stmt in body.split(";"):
            if not stmt.strip():
                continue
            m = re.search(r"\b([A-Za-z_]\w*)\s*\(", stmt)
            if not m or not re.search(r"\)\s*$", stmt):
                errs.append(f"{fn}: SYNOPSIS has '{' '.join(stmt.split())};', which is not a prototype")
                continue
            name = m.group(1)
            shown.add(name)
            if name not in hdr.funcs:
                errs.append(f"{fn}: SYNOPSIS shows {name}(), which no header exports")
            elif hdr.funcs[name][1] != norm(stmt):
                errs.append(f"{fn}: prototype of {name} differs from <acme/{hdr.funcs[name][0]}>:\n"
                            f"    page:   {norm(stmt)}\n    header: {hdr.funcs[name][1]}")
            else:
                from_header(name + "()", hdr.funcs[name][0])
        for n in p.names():
            if n in hdr.funcs and n not in shown:
                errs.append(f"{fn}: NAME lists {n} but SYNOPSIS does not show its prototype")

    # 5. every page renders without a warning (when groff is here)
    groff = shutil.which("groff")
    if groff:
        for fn, p in pages.items():
            if p.so:
                continue
            r = subprocess.run([groff, "-man", "-Tutf8", "-ww", "-z", p.path], capture_output=True, text=True)
            if r.returncode != 0 or r.stderr.strip():
                errs.append(f"{fn}: groff -man -ww warns:\n{r.stderr.rstrip()}")
    else:
        print("check-man: groff not found (apt-get install groff-base): pages not rendered", file=sys.stderr)

    # 3. installed
    meson = read(os.path.join(man_dir, "meson.build"))
    installed = set(re.findall(r"'([^']+\.[1-8])'", meson))
    for fn in pages:
        if fn not in installed:
            errs.append(f"{fn}: not installed: add it to doc/man/meson.build")
    for fn in sorted(installed - set(pages)):
        errs.append(f"doc/man/meson.build installs {fn}, which does not exist")
    return errs, pages


def examples(src, pages):
    out = []
    for fn, p in sorted(pages.items()):
        for i, code in enumerate(p.examples(), 1):
            out.append((f"man-{fn.replace('.', '_')}-{i}.c", code, f"doc/man/{fn} EXAMPLES #{i}"))
    doc = os.path.join(src, "doc")
    for fn in sorted(os.listdir(doc)):
        if not fn.endswith(".md"):
            continue
        blocks = re.findall(r"^```c[ \t]*\n(.*?)^```", read(os.path.join(doc, fn)), flags=re.M | re.S)
        for i, code in enumerate(blocks, 1):
            if re.search(r"\bint\s+main\s*\(", code):
                out.append((f"md-{fn[:-3]}-{i}.c", code, f"doc/{fn} ```c block #{i}"))
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    src = argv[1]
    errs, pages = check(src)
    exs = examples(src, pages)
    if len(argv) >= 4 and argv[2] == "--extract":
        os.makedirs(argv[3], exist_ok=True)
        for name, code, where in exs:
            with open(os.path.join(argv[3], name), "w", encoding="utf-8") as f:
                f.write(f"/* {where} */\n" + code)
        # The list run.sh reads: file, then whether it is a whole program.
        with open(os.path.join(argv[3], "examples.list"), "w", encoding="utf-8") as f:
            for name, code, where in exs:
                whole = "main" if re.search(r"\bint\s+main\s*\(", code) else "object"
                f.write(f"{name} {whole}\n")
        print(f"check-man: {len(exs)} examples written to {argv[3]}")
        return 0
    for e in errs:
        print("check-man: FAIL: " + e, file=sys.stderr)
    nfunc = len(Headers(os.path.join(src, "include", "acme")).funcs)
    real = sum(1 for p in pages.values() if not p.so)
    print(f"check-man: {nfunc} exported functions, {real} pages, {len(pages) - real} aliases, "
          f"{len(exs)} examples")
    bad = len(errs)
    if len(argv) >= 4 and argv[2] == "--compile":
        cc = argv[3:]
        with tempfile.TemporaryDirectory() as tmp:
            for name, code, where in exs:
                path = os.path.join(tmp, name)
                with open(path, "w", encoding="utf-8") as f:
                    f.write(code)
                cmd = cc + ["-std=c11", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only",
                            "-I" + os.path.join(src, "include"), path]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    bad += 1
                    print(f"check-man: FAIL: {where} does not compile:\n{r.stderr}", file=sys.stderr)
        print(f"check-man: compiled {len(exs)} examples against {src}/include with {' '.join(cc)}")
    if bad:
        print(f"check-man: {bad} problem(s)", file=sys.stderr)
        return 1
    print("check-man: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
