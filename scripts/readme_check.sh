#!/usr/bin/env bash
# Runs every command the README shows, against the fixtures, and fails when what comes out has
# another shape than the README shows, or another exit status.
#
# - A ```sh block is run line by line; a plain ``` block right after one is the output of its
#   last command.
# - In any other block, a line starting with "$ " is a command, and the lines after it, up to
#   the next command, are what it prints (standard output and error together).
# - Shape: every number may differ (times, counts, sizes), "/…/" stands for any folders, a
#   line "..." for any number of lines, and a line ending in "..." for any line it begins.
# - A command exits 0 unless its line ends in "# exits N".
# - Each block runs in a throw-away index and caption cache of its own; /tmp/scenedex-demo in a
#   command is that index.
# - Commands that need what a reader has and this check does not (an API key, a model server,
#   their own footage, a Qdrant cluster) are listed as skipped, with why.
#
# SCENEDEX names the binary to run for `scenedex` (default: target/release/scenedex, else
# target/debug/scenedex). Used by tests/readme.rs, so the README cannot drift.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${SCENEDEX:-}" ]]; then
    for candidate in target/release/scenedex target/debug/scenedex; do
        [[ -x $candidate ]] && SCENEDEX=$PWD/$candidate && break
    done
fi
[[ -x "${SCENEDEX:-}" ]] || { echo "Error: build scenedex first (cargo build --release)" >&2; exit 2; }
export SCENEDEX
exec python3 - README.md <<'PYTHON'
import os, re, subprocess, sys, tempfile

SKIP = [
    (r"^scripts/setup\.sh|^cargo |^scripts/test\.sh|^scripts/demo\.sh",
     "builds or tests the project itself (CI runs these)"),
    (r"OPENAI_API_KEY=sk-|OPENAI_BASE_URL=http://localhost", "needs an API key or a model server"),
    (r"~/footage|/mnt/archive|clip\.mp4|mpv ", "runs on the reader's own footage"),
    (r"scripts/cluster\.sh|QDRANT_URL=", "needs a Qdrant cluster (tests/server.rs runs one)"),
]

def blocks(text):
    """Fenced blocks as (language, lines)."""
    out, lang, lines = [], None, None
    for line in text.splitlines():
        if line.startswith("```"):
            if lines is None:
                lang, lines = line[3:].strip(), []
            else:
                out.append((lang, lines))
                lines = None
        elif lines is not None:
            lines.append(line)
    return out

def commands(found):
    """(command, expected lines or None, block number) in README order."""
    out, i = [], 0
    while i < len(found):
        lang, lines = found[i]
        if lang == "sh":
            cmds = [l for l in lines if l.strip() and not l.lstrip().startswith("#")]
            expected = None
            if i + 1 < len(found) and found[i + 1][0] == "" and not any(
                    l.startswith("$ ") for l in found[i + 1][1]):
                expected, i = found[i + 1][1], i + 1
            for n, c in enumerate(cmds):
                out.append((c, expected if n == len(cmds) - 1 else None, i))
        elif lang == "":
            current = None
            for line in lines:
                if line.startswith("$ "):
                    current = [line[2:], [], i]
                    out.append(current)
                elif current is not None:
                    current[1].append(line)
        i += 1
    return out

def split_status(command):
    m = re.search(r"\s+#\s*exits (\d+)\s*$", command)
    if m:
        return command[:m.start()], int(m.group(1))
    return re.sub(r"\s+#.*$", "", command), 0

NUMBER = re.compile(r"\d+(?:\.\d+)?")

def shape(line):
    return NUMBER.sub("N", line.rstrip())

def line_matches(expected, actual):
    e, a = shape(expected), shape(actual)
    if e.endswith("...") or e.endswith("…"):
        e = e.rstrip(".…").rstrip(", ")
        return a.startswith(e.replace("/…/", "/")) or re.match(pattern(e), a) is not None
    return re.fullmatch(pattern(e), a) is not None

def pattern(e):
    parts = [re.escape(p) for p in e.split("/…/")]
    return "/(?:.*/)?".join(parts)

def matches(expected, actual):
    """Whether the actual lines have the expected shape; '...' lines match any run of lines."""
    if not expected:
        return not actual
    if expected[0].strip() in ("...", "…"):
        return any(matches(expected[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and line_matches(expected[0], actual[0]) and matches(expected[1:], actual[1:])

def main():
    binary = os.environ["SCENEDEX"]
    found = commands(blocks(open(sys.argv[1]).read()))
    failures, ran, skipped = [], 0, []
    state, cut_short = {}, {}
    for command, expected, block in found:
        command, status = split_status(command)
        why = next((w for p, w in SKIP if re.search(p, command)), None) or cut_short.get(block)
        if why:
            skipped.append(f"{command}  ({why})")
            # What follows in the block stands on what was skipped (a cluster, say), except
            # after building the project, which the check has done already.
            if not why.startswith("builds"):
                cut_short[block] = why
            continue
        if block not in state:
            state = {block: tempfile.mkdtemp(prefix="scenedex-readme-")}
        home = state[block]
        shell = command.replace("./target/release/scenedex", binary)
        shell = re.sub(r"(^|[\s;&|(])scenedex(?=\s)", lambda m: m.group(1) + binary, shell)
        shell = shell.replace("/tmp/scenedex-demo", os.path.join(home, "index"))
        env = dict(os.environ, XDG_CACHE_HOME=os.path.join(home, "cache"),
                   SCENEDEX_CONFIG=os.path.join(home, "no-config.toml"))
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "SCENEDEX_INDEX",
                     "QDRANT_URL", "SCENEDEX_MODEL", "SCENEDEX_CACHE_DIR"):
            env.pop(name, None)
        result = subprocess.run(["bash", "-c", shell], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=900)
        ran += 1
        actual = result.stdout.splitlines()
        wrong = []
        if result.returncode != status:
            wrong.append(f"exit status {result.returncode}, the README says {status}")
        if expected is not None:
            expected = [l.replace("/tmp/scenedex-demo", os.path.join(home, "index"))
                        for l in expected]
        if expected is not None and not matches(expected, actual):
            wrong.append("output differs:\n--- README\n" + "\n".join(expected)
                         + "\n--- actual\n" + "\n".join(actual))
        print(("FAIL  " if wrong else "ok    ") + command)
        if wrong:
            failures.append(command + "\n" + "\n".join(wrong))
    for s in skipped:
        print("skip  " + s)
    print(f"{ran} commands run, {len(failures)} failed, {len(skipped)} skipped")
    for f in failures:
        print("\n" + f, file=sys.stderr)
    sys.exit(1 if failures or ran == 0 else 0)

main()
PYTHON
