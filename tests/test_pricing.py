"""Tests of :mod:`pytest_crewguard.pricing`: genai-prices lookups, overrides, price files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pytest_crewguard.errors import ConfigError
from pytest_crewguard.pricing import ModelPrice, PriceTable
from pytest_crewguard.usage import Usage

# --- genai-prices ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o-mini-2024-07-18"),
        ("azure", "gpt-4o-mini-2024-07-18"),
        ("openrouter", "openai/gpt-4o-mini"),
        (None, "gpt-4o-mini"),
        ("some-local-proxy", "gpt-4o-mini"),  # unknown provider: matched by model name
    ],
)
def test_gpt_4o_mini_hand_arithmetic(provider: str | None, model: str) -> None:
    # $0.15/M input, $0.60/M output: 1,200 * 0.15 + 300 * 0.60 = 180 + 180 = 360 micro-dollars.
    assert PriceTable().cost(provider, model, Usage(input_tokens=1_200, output_tokens=300)) == 0.00036


def test_cached_input_gpt_4o_mini() -> None:
    # Published: input $0.15/M, cached input $0.075/M, output $0.60/M. 1,200 input of which 1,000
    # cached: 200 * 0.15 + 1,000 * 0.075 + 300 * 0.60 = 30 + 75 + 180 = 285 micro-dollars.
    usage = Usage(input_tokens=1_200, output_tokens=300, cached_tokens=1_000)
    assert PriceTable().cost("openai", "gpt-4o-mini", usage) == 0.000285


def test_cache_read_and_write_claude_haiku_4_5() -> None:
    # Published: input $1/M, output $5/M, cache read $0.10/M, 5-minute cache write $1.25/M.
    # 1,200 input = 100 uncached + 1,000 read + 100 written:
    # 100 * 1 + 1,000 * 0.10 + 100 * 1.25 + 300 * 5 = 100 + 100 + 125 + 1,500 = 1,825 micro-dollars.
    usage = Usage(input_tokens=1_200, output_tokens=300, cached_tokens=1_000, cache_write_tokens=100)
    assert PriceTable().cost("anthropic", "claude-haiku-4-5", usage) == 0.001825


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "non-existent-model"),  # recorded by crewai's own tests (a 404)
        (None, "my-private-finetune"),
        ("unknown-provider", "my-private-finetune"),
        ("openai", None),
        ("openai", ""),
    ],
)
def test_unknown_model_is_unpriced_not_free(provider: str | None, model: str | None) -> None:
    assert PriceTable().cost(provider, model, Usage(input_tokens=1_000, output_tokens=1_000)) is None


def test_version_names_the_library() -> None:
    from importlib.metadata import version

    assert PriceTable().version == f"genai-prices {version('genai-prices')}"


def test_importing_pricing_loads_neither_genai_prices_nor_yaml() -> None:
    code = "import sys, pytest_crewguard.pricing; sys.exit(bool({'genai_prices', 'yaml'} & set(sys.modules)))"
    root = Path(__file__).resolve().parents[1]
    assert subprocess.run([sys.executable, "-c", code], cwd=root, check=False).returncode == 0


# --- overrides -------------------------------------------------------------------------------

PRICE_FILES = {
    "prices.yaml": """\
my-finetune:
  input: 0.30        # USD per million input tokens
  cached_input: 0.15
  output: 1.20
gpt-4o-mini:
  input: 1
  output: 2
""",
    "prices.yml": """\
models:
  my-finetune: {input: 0.30, cached_input: 0.15, output: 1.20}
  gpt-4o-mini: {input: 1, output: 2}
""",
    "prices.toml": """\
[my-finetune]
input = 0.30
cached_input = 0.15
output = 1.20

[gpt-4o-mini]
input = 1
output = 2
""",
    "models.toml": """\
[models.my-finetune]
input = 0.30
cached_input = 0.15
output = 1.20

[models."gpt-4o-mini"]
input = 1
output = 2
""",
    "prices.json": """\
{"my-finetune": {"input": 0.30, "cached_input": 0.15, "output": 1.20},
 "gpt-4o-mini": {"input": 1, "output": 2}}
""",
}


@pytest.mark.parametrize("name", sorted(PRICE_FILES))
def test_price_file_overrides_win(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(PRICE_FILES[name], encoding="utf-8")
    table = PriceTable.from_file(path)
    assert table.version.endswith(f" + overrides from {name}")

    # 1M input of which 400k cached, 1M output: 0.6M * 0.30 + 0.4M * 0.15 + 1M * 1.20 = 1.44.
    usage = Usage(input_tokens=1_000_000, output_tokens=1_000_000, cached_tokens=400_000)
    assert table.cost("openai", "my-finetune", usage) == 1.44
    assert table.cost(None, "my-finetune-2025-01-31", usage) == 1.44

    # The override beats genai-prices' $0.15/$0.60 under every spelling of the name.
    small = Usage(input_tokens=1_200, output_tokens=300)  # 1,200 * 1 + 300 * 2 = 1,800 micro-dollars
    for provider, model in [
        ("openai", "gpt-4o-mini"),
        ("openai", "gpt-4o-mini-2024-07-18"),  # date suffix
        ("openrouter", "openai/gpt-4o-mini"),  # provider prefix
        ("openrouter", "openai/gpt-4o-mini-2024-07-18"),  # both
        ("azure", "gpt-4o-mini-20240718"),  # compact date
    ]:
        assert table.cost(provider, model, small) == 0.0018, (provider, model)

    # Models without an override still come from genai-prices; unknown ones stay unpriced.
    assert table.cost("openai", "gpt-4.1-mini", Usage(1_000_000, 0)) == 0.4
    assert table.cost("openai", "another-finetune", small) is None


def test_provider_specific_override(tmp_path: Path) -> None:
    path = tmp_path / "prices.yaml"
    path.write_text("azure/gpt-4o-mini: {input: 10, output: 10}\n", encoding="utf-8")
    table = PriceTable.from_file(path)
    usage = Usage(input_tokens=1_200, output_tokens=300)
    assert table.cost("azure", "gpt-4o-mini-2024-07-18", usage) == 0.015
    assert table.cost("openai", "gpt-4o-mini-2024-07-18", usage) == 0.00036


def test_overrides_in_code() -> None:
    table = PriceTable({"local-llama": ModelPrice(input=0, output=0)})
    assert table.cost("openai", "local-llama", Usage(5_000, 5_000)) == 0.0  # priced as free, on purpose
    assert table.version.endswith("+ 1 override(s)")
    cache = PriceTable({"m": ModelPrice(input=2, output=4, cached_input=1, cache_write=3)})
    # 100 uncached * 2 + 50 read * 1 + 50 written * 3 + 10 output * 4 = 440 micro-dollars.
    assert cache.cost(None, "m", Usage(200, 10, cached_tokens=50, cache_write_tokens=50)) == 0.00044


# --- malformed price files -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("prices.yaml", "- a\n- list\n", ["mapping of model name to prices", "got list"]),
        ("prices.yaml", "", ["mapping of model name to prices", "got nothing"]),
        ("prices.yaml", "my-model: 0.3\n", ["model 'my-model'", "expected a mapping with 'input'"]),
        (
            "prices.yaml",
            "my-model:\n  input: abc\n  output: 1\n",
            ["model 'my-model'", "key 'input'", "non-negative number", "'abc'"],
        ),
        ("prices.yaml", "my-model: {input: -1, output: 1}\n", ["model 'my-model'", "key 'input'", "-1"]),
        ("prices.yaml", "my-model: {input: 1, output: true}\n", ["model 'my-model'", "key 'output'", "True"]),
        (
            "prices.yaml",
            "my-model: {input: 1, output: 2, cachedinput: 0.5}\n",
            ["model 'my-model'", "unknown key 'cachedinput'", "input, output, cached_input, cache_write"],
        ),
        ("prices.yaml", "my-model: {input: 1}\n", ["model 'my-model'", "missing key 'output'"]),
        ("prices.yaml", "my-model: {output: 1}\n", ["model 'my-model'", "missing key 'input'"]),
        ("prices.yaml", "my-model: {input: 1, output: [\n", ["not valid YAML"]),
        (
            "prices.yaml",
            "models: {m: {input: 1, output: 1}}\nextra: 1\n",
            ["unknown top-level key(s) 'extra'", "under 'models'"],
        ),
        ("prices.toml", '[my-model]\ninput = "0.3"\noutput = 1\n', ["model 'my-model'", "'input'", "'0.3'"]),
        ("prices.toml", "[my-model\ninput = 1\n", ["not valid TOML"]),
        ("prices.json", "{not json", ["not valid JSON"]),
        ("prices.json", '{"m": {"input": NaN, "output": 1}}', ["model 'm'", "key 'input'", "non-negative"]),
        ("prices.json", "[]", ["mapping of model name to prices"]),
        ("prices.txt", "m: {input: 1, output: 1}", ["unsupported file type '.txt'", ".yaml, .yml, .toml"]),
    ],
)
def test_malformed_price_file(tmp_path: Path, name: str, text: str, expected: list[str]) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        PriceTable.from_file(path)
    message = str(info.value)
    assert str(path) in message
    for part in expected:
        assert part in message
    assert "\n" not in message  # one readable line


def test_missing_price_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match=r"nowhere\.yaml: cannot be read: No such file"):
        PriceTable.from_file(path)
