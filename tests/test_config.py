"""plugin.yaml: every configuration error is one line naming file, line and key."""

from __future__ import annotations

import textwrap

import pytest

from whopfunnel_plugin.config import Config, Route, check_routes, find_config, load_config
from whopfunnel_plugin.errors import ConfigError
from whopfunnel_plugin.events import MemberJoined


def load(tmp_path, text: str) -> Config:
    path = tmp_path / "plugin.yaml"
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def error(tmp_path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return [line.replace(str(tmp_path) + "/", "") for line in str(info.value).splitlines()]


def test_the_spec_example_loads(tmp_path):
    cfg = load(tmp_path, """\
        name: whopfunnel
        version: 0.1.0
        database: sqlite:///whopfunnel.db
        funnels: funnels/
        routes:
          - product: prod_123
            experience: exp_123
            funnel: onboarding
          - default: true
            experience: exp_default
            funnel: onboarding
        whop:
          base_url: https://api.whop.com/api/v1
          api_key_env: WHOP_API_KEY
          webhook_secret_env: WHOP_WEBHOOK_SECRET
          bot_user_id_env: WHOP_BOT_USER_ID
          poll_every: 10s
        timeouts:
          conversation: 24h
          reminder: null
          sweep_every: 1h
        escalation:
          default:
            - message: "Please choose from the provided options above."
            - message: "I'll inform the Whop owner about your request. Please wait for assistance."
              action: notify_owner
            - message: "I'm unable to help you further. Please contact the Whop owner directly."
              action: abandon
        server:
          host: 127.0.0.1
          port: 8080
        plugins: []
        """)
    assert cfg.timeout == 86400 and cfg.sweep_every == 3600 and cfg.poll_every == 10
    assert cfg.routes[0] == Route(funnel="onboarding", experience="exp_123", product="prod_123")
    assert cfg.ladders["default"][1].action == "notify_owner"
    (tmp_path / "funnels").mkdir()
    assert cfg.funnel_paths() == [tmp_path / "funnels/"]


@pytest.mark.parametrize("text, expected", [
    ("databse: x\n", "plugin.yaml:1:1: unknown key 'databse' at the top level; did you mean 'database'?"),
    ("whop:\n  api_key_envv: X\n", "plugin.yaml:2:3: unknown key 'api_key_envv' in whop; did you mean "
     "'api_key_env'?"),
    ("timeouts:\n  conversation: soon\n", "plugin.yaml:2:17: timeouts.conversation: expected a duration "
     "like 90s, 15m, 24h or 7d, got 'soon'"),
    ("timeouts:\n  sweep_every: -5\n", "plugin.yaml:2:16: timeouts.sweep_every: a duration cannot be "
     "negative, got -5"),
    ("server:\n  port: eighty\n", "plugin.yaml:2:9: server.port must be a port number, not 'eighty'"),
    ("server: 8080\n", "plugin.yaml:1:9: server must be a mapping"),
    ("whop:\n  api_key_env: sk_live_abc-123\n", "plugin.yaml:2:16: whop.api_key_env must name an "
     "environment variable (like WHOP_API_KEY), but its value looks like a secret itself (not "
     "shown); put the secret in the environment, its name here, and rotate it if this file was "
     "shared"),
    ("whop:\n  api_key_env: WHOP-KEY\n", "plugin.yaml:2:16: whop.api_key_env names an environment "
     "variable (like WHOP_API_KEY); never put the secret itself in plugin.yaml"),
    ("whop:\n  base_url: api.whop.com\n", "plugin.yaml:2:13: whop.base_url must be an http(s) URL, "
     "not 'api.whop.com'"),
    ("database: oracle://x\n", "plugin.yaml:1:11: database must be a URL like sqlite:///whopfunnel.db, "
     "postgresql://user@host/db or mysql://user@host/db"),
    ("routes:\n  - product: prod_1\n", "plugin.yaml:2:5: route 1 needs 'funnel: <funnel id>'"),
    ("routes:\n  - funnel: onboarding\n", "plugin.yaml:2:5: route 1 matches nothing: give product, "
     "experience, company or default: true"),
    ("plugins: [my-plugin]\n", "plugin.yaml:1:11: plugin 'my-plugin' is not a dotted module name"),
    ("escalation:\n  strict:\n    - message: hm\n", "plugin.yaml:3:7: the last escalation step of ladder "
     "'strict' must end or move the conversation (abandon, handoff or goto), not 'reprompt'"),
    ("timeouts:\n  conversation: 1h\n  reminder: 2h\n", "plugin.yaml:3:13: timeouts.reminder must be "
     "shorter than timeouts.conversation, or the reminder would never be sent"),
    ("- a\n", "plugin.yaml:1:1: plugin.yaml must be a mapping of settings"),
    ("timeouts:\n  conversation: 0s\n", "plugin.yaml:2:17: timeouts.conversation: must be longer "
     "than zero"),
    ("timeouts:\n  sweep_every: 0\n", "plugin.yaml:2:16: timeouts.sweep_every: must be longer than zero"),
    ("whop:\n  poll_budget: 0\n", "plugin.yaml:2:16: whop.poll_budget must be a whole number of at "
     "least 1, not 0"),
    ("whop:\n  rate_limit: fast\n", "plugin.yaml:2:15: whop.rate_limit must be a request budget like "
     "20/s, 100/10s, 600/m or {requests: 20, per: 1s, burst: 5} (whole numbers of at least 1), not 'fast'"),
    ("whop:\n  rate_limit: 0/s\n", "plugin.yaml:2:15: whop.rate_limit must be a request budget like "
     "20/s, 100/10s, 600/m or {requests: 20, per: 1s, burst: 5} (whole numbers of at least 1), not '0/s'"),
    ("whop:\n  rate_limit: {requests: 5, every: 1s}\n", "plugin.yaml:2:15: whop.rate_limit must be a "
     "request budget like 20/s, 100/10s, 600/m or {requests: 20, per: 1s, burst: 5} (whole numbers of at "
     "least 1), not {'requests': 5, 'every': '1s'}"),
    ("whop:\n  api_version_date: tomorrow\n", "plugin.yaml:2:21: whop.api_version_date must be an "
     "Api-Version-Date like 2026-10-15-1, not 'tomorrow'"),
])
def test_configuration_errors(tmp_path, text, expected):
    assert error(tmp_path, text) == [expected]


def test_the_whop_api_version_and_request_budget(tmp_path):
    from whopfunnel_plugin.durations import RateBudget

    default = load(tmp_path, "whop: {}\n")
    assert (default.api_version_date, default.rate_limit) == ("2026-10-15-1", RateBudget(20, 1, 1))
    assert default.rate_limit.rate == 20.0
    cfg = load(tmp_path, "whop:\n  api_version_date: 2026-08-21\n  rate_limit: 100/10s\n")
    assert (cfg.api_version_date, cfg.rate_limit) == ("2026-08-21", RateBudget(100, 10, 1))  # a YAML date
    cfg = load(tmp_path, "whop:\n  rate_limit: {requests: 600, per: 1m, burst: 5}\n")
    assert (cfg.rate_limit, cfg.rate_limit.rate, str(cfg.rate_limit)) == (RateBudget(600, 60, 5), 10.0,
                                                                          "600/60s (burst 5)")
    assert load(tmp_path, "whop:\n  rate_limit: null\n").rate_limit is None  # only 429s slow us down


def test_a_misspelled_route_key(tmp_path):
    assert error(tmp_path, "routes:\n  - {funnel: x, prodcut: p}\n") == [
        "plugin.yaml:2:5: route 1 matches nothing: give product, experience, company or default: true",
        "plugin.yaml:2:17: unknown key 'prodcut' in route 1; did you mean 'product'?",
    ]


def test_every_problem_at_once(tmp_path):
    assert len(error(tmp_path, "databse: x\nserver:\n  port: x\ntimeouts:\n  reminder: nah\n")) == 3


def test_a_missing_environment_variable_is_named(tmp_path):
    cfg = load(tmp_path, "whop:\n  api_key_env: ACME_WHOP_KEY\n")
    with pytest.raises(ConfigError) as info:
        cfg.secret("api_key_env", environ={})
    assert str(info.value) == ("environment variable ACME_WHOP_KEY is not set (named by "
                               f"whop.api_key_env in {tmp_path / 'plugin.yaml'})")
    assert cfg.secret("api_key_env", environ={"ACME_WHOP_KEY": "k"}) == "k"


def test_a_route_to_an_unknown_funnel(tmp_path):
    cfg = load(tmp_path, "routes:\n  - {product: p, funnel: onbaording}\n")
    with pytest.raises(ConfigError) as info:
        check_routes(cfg, {"onboarding"})
    assert str(info.value) == (f"{tmp_path / 'plugin.yaml'}:2:26: route 1 names unknown funnel "
                               "'onbaording'; did you mean 'onboarding'?")


def test_routes_match_product_company_experience_then_default(tmp_path):
    cfg = load(tmp_path, """\
        routes:
          - {product: prod_a, experience: exp_a, funnel: a}
          - {company: biz_b, experience: exp_b, funnel: b}
          - {experience: exp_c, funnel: c}
          - {default: true, experience: exp_d, funnel: d}
        """)

    def route(**kw):
        kw.setdefault("experience_id", "exp_x")
        return cfg.route(MemberJoined(user_id="u", **kw)).funnel

    assert route(product_id="prod_a") == "a"
    assert route(product_id="prod_z", company_id="biz_b") == "b"
    assert route(experience_id="exp_c") == "c"
    assert route(product_id="prod_z") == "d"


def test_database_url_from_the_environment_wins(tmp_path):
    cfg = load(tmp_path, "database: sqlite:///a.db\n")
    assert cfg.database_url({}) == "sqlite:///a.db"
    assert cfg.database_url({"DATABASE_URL": "postgresql://x/y"}) == "postgresql://x/y"


def test_find_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config(None, {}) is None
    (tmp_path / "plugin.yaml").write_text("{}\n")
    assert find_config(None, {}) == "plugin.yaml"
    (tmp_path / "other.yaml").write_text("{}\n")
    assert find_config(None, {"WHOPFUNNEL_CONFIG": "other.yaml"}) == "other.yaml"
    assert find_config("plugin.yaml", {"WHOPFUNNEL_CONFIG": "other.yaml"}) == "plugin.yaml"
    with pytest.raises(ConfigError, match="configuration file nope.yaml does not exist"):
        find_config("nope.yaml", {})


def test_the_shipped_plugin_yaml_is_valid():
    from .conftest import ROOT

    cfg = load_config(ROOT / "plugin.yaml")
    assert cfg.name == "whopfunnel"


def test_funnel_files_that_do_not_exist_are_named_at_their_line(tmp_path):
    cfg = load(tmp_path, "funnels:\n  - a.yaml\n  - b.yaml\n")
    (tmp_path / "a.yaml").write_text("id: a\n")
    with pytest.raises(ConfigError) as err:
        cfg.funnel_paths()
    assert str(err.value) == (f"{tmp_path / 'plugin.yaml'}:3:5: funnels: b.yaml does not exist "
                              f"(looked for {tmp_path / 'b.yaml'})")


def test_the_default_ladder_of_plugin_yaml_applies_to_funnels_that_name_none(tmp_path):
    from whopfunnel_plugin.funnel.model import check_bytes

    cfg = load(tmp_path, "escalation:\n  default:\n    - {message: Try again}\n"
                         "    - {message: Bye, action: abandon}\n")
    funnel, _ = check_bytes(b"id: f\nstart: a\nblocks:\n  a:\n    message: Hi\n    options:\n"
                            b"      - {text: x, next: e}\n  e: {type: end}\n", ladders=cfg.ladders)
    assert [s.message for s in funnel.ladder("a")] == ["Try again", "Bye"]
