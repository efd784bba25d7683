import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, re.S)]


def test_readme_has_two_setup_commands_and_ci_runs_exactly_them():
    commands = setup_commands()
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    ci_lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    for command in commands:
        assert command in ci_lines
    assert ci_lines.index(commands[0]) < ci_lines.index(commands[1])
    assert "-DGGML_NATIVE=OFF" in commands[0]
