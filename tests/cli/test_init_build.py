"""``atoll init`` and ``atoll build``: every template is created, built from source and run.

The builds use the real toolchains, which CI installs with
``scripts/install-toolchains.sh``: a missing toolchain fails these tests with
its install command in the message (they are not skipped). Every template is
loaded with ``load_worker`` and serves a request; whole-wasm templates also
run as CGI programs under wasmtime-py's own WASI, independent of atoll.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import wasmtime
from click.testing import CliRunner, Result

from atoll.api import Request
from atoll.cli.build import build
from atoll.cli.init import PLACEHOLDER, TEMPLATES, copy_template, init, template_dir
from atoll.worker import Runtime, load_worker
from tests.examples.cgi_wasi import run_cgi

REPO = Path(__file__).resolve().parents[2]
TEMPLATE_ROOT = REPO / "src" / "atoll" / "templates"

#: Template → the wasm file its build writes (None: no wasm).
WASM = {
    "python": None,
    "python-rust": "build/greeter.wasm",
    "python-c": "build/greeter.wasm",
    "python-assemblyscript": "build/greeter.wasm",
    "rust-wasi": "build/app.wasm",
    "c-wasi": "build/app.wasm",
    "zig-wasi": "build/app.wasm",
    "assemblyscript-wasi": "build/app.wasm",
    "js": None,
    "js-rust": "build/greeter.wasm",
}
LANGUAGE = {
    "python-rust": "Rust",
    "python-c": "C",
    "python-assemblyscript": "AssemblyScript",
    "rust-wasi": "Rust",
    "c-wasi": "C",
    "zig-wasi": "Zig",
    "assemblyscript-wasi": "AssemblyScript",
    "js-rust": "Rust",
}


def invoke(command: object, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(command, list(args), catch_exceptions=False)  # type: ignore[arg-type]


# -- the templates themselves ---------------------------------------------------------


def test_templates_table_matches_the_folders() -> None:
    assert set(TEMPLATES) == {p.name for p in TEMPLATE_ROOT.iterdir() if p.is_dir()}
    assert set(WASM) == set(TEMPLATES)


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_template_is_complete(template: str) -> None:
    folder = template_dir(template)
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"atoll.toml", "README.md", "gitignore", "tests/test_worker.py"} <= files
    assert not [f for f in files if f.endswith(".wasm") or f.startswith("build/")]
    assert not [f for f in files if "node_modules" in f or "__pycache__" in f]
    manifest = (folder / "atoll.toml").read_text()
    assert f'name = "{PLACEHOLDER}"' in manifest
    assert "[build]" in manifest
    assert "command = " in manifest
    readme = (folder / "README.md").read_text()
    assert readme.startswith(f"# {PLACEHOLDER}\n")
    assert f"--template {template}" in readme
    if WASM[template]:
        assert "build.sh" in files
        assert "build/" in (folder / "gitignore").read_text().split()


def test_templates_ship_in_the_wheel(tmp_path: Path) -> None:
    """The wheel (what `pip install .` installs) holds every template file.

    Built from a copy of the sources, so nothing is written into the repo.
    """
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(
        REPO / "src",
        source / "src",
        ignore=shutil.ignore_patterns("__pycache__", "build", "node_modules", "*.egg-info"),
    )
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    (wheel,) = tmp_path.glob("atoll-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        shipped = {n for n in archive.namelist() if n.startswith("atoll/templates/")}
    expected = {
        f"atoll/templates/{path.relative_to(TEMPLATE_ROOT).as_posix()}"
        for path in TEMPLATE_ROOT.rglob("*")
        if path.is_file() and not {"build", "node_modules", "__pycache__"} & set(path.parts)
    }
    assert expected <= shipped, sorted(expected - shipped)


# -- atoll init ------------------------------------------------------------------------


def test_init_help_lists_templates() -> None:
    result = invoke(init, "--help")
    assert result.exit_code == 0
    for name, what in TEMPLATES.items():
        assert name in result.output
        assert what in result.output


def test_init_bad_template_lists_them(tmp_path: Path) -> None:
    result = CliRunner().invoke(init, ["w", "-t", "cobol", "--dir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "unknown template 'cobol'" in result.output
    for name in TEMPLATES:
        assert name in result.output
    assert not (tmp_path / "w").exists()


def test_init_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = CliRunner().invoke(init, ["w", "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "already exists and is not empty" in result.output
    assert "Traceback" not in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_init_into_an_empty_folder_and_default_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "empty").mkdir()
    assert invoke(init, "first", "--dir", str(tmp_path / "empty")).exit_code == 0
    assert (tmp_path / "empty" / "atoll.toml").is_file()
    monkeypatch.chdir(tmp_path)
    result = invoke(init, "second")  # default template python, into ./second
    assert result.exit_code == 0
    assert 'name = "second"' in (tmp_path / "second" / "atoll.toml").read_text()


@pytest.mark.parametrize("name", ["Bad", "x-", "a_b", "x" * 64])
def test_init_rejects_bad_names(tmp_path: Path, name: str) -> None:
    result = CliRunner().invoke(init, [name, "--dir", str(tmp_path / "w")])
    assert result.exit_code == 1
    assert "is not a valid worker name" in result.output


def test_init_names_the_worker_and_restores_dotfiles(tmp_path: Path) -> None:
    target = tmp_path / "hello"
    written = copy_template("python-assemblyscript", target, "hello-as")
    assert Path(".gitignore") in written
    assert (target / ".gitignore").is_file()
    assert not (target / "gitignore").exists()
    for file in ("atoll.toml", "README.md", "package.json", "package-lock.json"):
        text = (target / file).read_text()
        assert PLACEHOLDER not in text
        assert "hello-as" in text
    assert (target / "build.sh").stat().st_mode & stat.S_IXUSR


# -- atoll build --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, Result]]:
    """``built(template)``: a worker made by `atoll init` and built by `atoll build`, once each."""
    root = tmp_path_factory.mktemp("templates")
    done: dict[str, tuple[Path, Result]] = {}

    def get(template: str) -> tuple[Path, Result]:
        if template not in done:
            folder = root / template
            created = invoke(init, "t-w", "-t", template, "--dir", str(folder))
            assert created.exit_code == 0, created.output
            done[template] = (folder, invoke(build, str(folder)))
        folder, result = done[template]
        assert result.exit_code == 0, (
            f"`atoll build` of template {template} failed:\n{result.output}"
        )
        return folder, result

    return get


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_template_builds_from_source(
    template: str, built: Callable[[str], tuple[Path, Result]]
) -> None:
    """`atoll init` then `atoll build`: the wasm appears and is valid (toolchains required)."""
    folder, result = built(template)
    assert "finished in" in result.output
    wasm = WASM[template]
    if wasm is not None:
        path = folder / wasm
        assert path.is_file()
        assert f"built: {wasm}" in result.output
        wasmtime.Module.validate(wasmtime.Engine(), path.read_bytes())
    again = invoke(build, str(folder))  # a second build works too (npm ci skipped, etc.)
    assert again.exit_code == 0, again.output


@pytest.fixture(scope="module")
def runtime() -> Runtime:
    return Runtime(cache_dir=False)


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t.startswith(("python", "js"))])
async def test_python_and_js_templates_serve_a_request(
    template: str, built: Callable[[str], tuple[Path, Result]], runtime: Runtime
) -> None:
    folder, _ = built(template)
    worker = load_worker(folder, runtime=runtime, dev=True)
    outcome = await worker.handle(Request("http://t/hello?name=Ada"), "rid")
    body = outcome.response.body.decode()
    assert outcome.response.status == 200, body
    if template in ("python", "js"):
        assert body.startswith("Hello, Ada!\n")
        assert "path:   /hello" in body
        assert "body:   0 bytes" in body
    else:
        assert body == (f"Hello, Ada! (from {LANGUAGE[template]})\nThere are 2 vowels in 'Ada'.\n")


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t.endswith("-wasi")])
def test_wasi_templates_answer_as_cgi_programs(
    template: str, built: Callable[[str], tuple[Path, Result]]
) -> None:
    """Until atoll's runtime serves them, run the built program with wasmtime-py's WASI."""
    folder, _ = built(template)
    wasm = folder / "build" / "app.wasm"
    page = run_cgi(wasm, method="POST", path="/a/<b>", query="x=1&y=<2>", body=b"12345")
    assert page.status == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    text = page.text
    assert f"<h1>Hello from {LANGUAGE[template]}</h1>" in text
    assert "<li>method: <code>POST</code></li>" in text
    assert "<li>path: <code>/a/&lt;b&gt;</code></li>" in text
    assert "<li>query: <code>x=1&amp;y=&lt;2&gt;</code></li>" in text
    assert "<li>body: 5 bytes</li>" in text
    assert page.stderr  # one log line
    missing = run_cgi(wasm, path="/missing")
    assert missing.status == 404
    assert missing.text == "nothing at /missing\n"


@pytest.mark.parametrize("template", [t for t in TEMPLATES if t.endswith("-wasi")])
async def test_wasi_templates_serve_a_request_through_atoll(
    template: str, built: Callable[[str], tuple[Path, Result]], runtime: Runtime
) -> None:
    """The same programs as whole-wasm workers in atoll's own runtime."""
    folder, _ = built(template)
    worker = load_worker(folder, runtime=runtime, dev=True)
    request = Request("http://t/p/q?x=1", method="POST", body=b"12345")
    outcome = await worker.handle(request, "rid")
    body = outcome.response.body.decode()
    assert outcome.response.status == 200, body
    assert "<li>path: <code>/p/q</code></li>" in body
    assert "<li>body: 5 bytes</li>" in body
    assert outcome.logs  # the program's stderr line
    missing = await worker.handle(Request("http://t/missing"), "rid2")
    assert missing.response.status == 404


@pytest.mark.parametrize("template", list(TEMPLATES))
def test_template_tests_pass_with_pytest(
    template: str, built: Callable[[str], tuple[Path, Result]]
) -> None:
    """`pytest` in the built worker's folder runs its tests/ through atoll's pytest plugin."""
    folder, _ = built(template)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout
    assert " failed" not in proc.stdout


# -- atoll build: errors ---------------------------------------------------------------------


def write_worker(folder: Path, command: str, script: str = "") -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "worker.py").write_text("async def fetch(request, env, ctx): ...\n")
    (folder / "atoll.toml").write_text(
        'name = "w"\nmain = "src/worker.py"\n[wasm_modules]\nM = "out/m.wasm"\n'
        f"[build]\ncommand = '{command}'\n"
    )
    if script:
        (folder / "build.sh").write_text(script)
        (folder / "build.sh").chmod(0o755)
    return folder


def test_build_failure_shows_the_output_without_traceback(tmp_path: Path) -> None:
    folder = write_worker(
        tmp_path / "w", "./build.sh", "#!/bin/sh\necho compiling\necho oops >&2\nexit 3\n"
    )
    result = CliRunner().invoke(build, [str(folder)])
    assert result.exit_code == 1
    assert "failed (exit 3)" in result.output
    assert "compiling" in result.output
    assert "oops" in result.output
    assert "Traceback" not in result.output


def test_build_that_writes_nothing_is_an_error(tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "true")
    result = CliRunner().invoke(build, [str(folder)])
    assert result.exit_code == 1
    assert "succeeded but 'out/m.wasm' does not exist" in result.output


def test_build_that_writes_invalid_wasm_is_an_error(tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "mkdir -p out && echo nope > out/m.wasm")
    result = CliRunner().invoke(build, [str(folder)])
    assert result.exit_code == 1
    assert "'out/m.wasm' but it is not valid WebAssembly" in result.output


def test_build_timeout_kills_the_command(tmp_path: Path) -> None:
    folder = write_worker(tmp_path / "w", "echo started; sleep 30")
    result = CliRunner().invoke(build, [str(folder), "--timeout", "1"])
    assert result.exit_code == 1
    assert "did not finish in 1 s" in result.output
    assert "started" in result.output


def test_build_gives_the_script_atoll_python(tmp_path: Path) -> None:
    folder = write_worker(
        tmp_path / "w",
        "./build.sh",
        '#!/bin/sh\nmkdir -p out\n"$ATOLL_PYTHON" -c "import sys; print(sys.executable)"\n'
        "printf '\\000asm\\001\\000\\000\\000' > out/m.wasm\n",
    )
    result = invoke(build, str(folder))
    assert result.exit_code == 0, result.output
    assert os.path.realpath(sys.executable) in {
        os.path.realpath(line.strip()) for line in result.output.splitlines() if line.strip()
    }
    assert "built: out/m.wasm (8 bytes)" in result.output


def test_build_missing_toolchain_fails_with_the_install_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))  # no node, npm or clang-14
    folder = write_worker(tmp_path / "w", "./build.sh", "#!/bin/sh\n# atoll-toolchain: c\n")
    result = CliRunner().invoke(build, [str(folder)])
    assert result.exit_code == 1
    assert "the c toolchain is missing: clang-14 not found" in result.output
    assert "apt-get install -y clang-14 lld-14 wasi-libc libclang-rt-14-dev-wasm32" in result.output
    assert "Traceback" not in result.output


def test_build_without_a_command(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "worker.py").write_text("")
    (tmp_path / "atoll.toml").write_text('name = "w"\nmain = "src/worker.py"\n')
    result = invoke(build, str(tmp_path))
    assert result.exit_code == 0
    assert "nothing to build" in result.output


def test_python_template_build_needs_no_toolchain(tmp_path: Path) -> None:
    target = tmp_path / "p"
    copy_template("python", target, "p")
    assert shutil.which("python3")
    result = invoke(build, str(target))
    assert result.exit_code == 0, result.output
    assert "toolchains: none declared" in result.output
