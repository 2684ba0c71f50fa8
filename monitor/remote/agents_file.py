"""The collector's agents file: which agent may speak for which province or commune.

``agents: {agent-id: "PROV" | "PROV/COMMUNE"}``. It is checked like the inventory
(:mod:`monitor.common.yaml_file`): every problem as ``FILE:LINE: message`` in one run. An agent id
given twice (YAML keeps the last of duplicate keys silently) and a code outside the official
list of provinces and communes are errors: a typo must not quietly give an agent the wrong
scope, or none.
"""

from __future__ import annotations

from pathlib import Path

from inventory import official
from inventory.nodes import Mapping, Node
from monitor.common import yaml_file
from monitor.remote import envelope

TOP_KEYS = ("agents",)
USAGE = "expected 'agents: {agent-id: PROV or PROV/COMMUNE}'"


class AgentsFileError(yaml_file.FileProblems, ValueError):
    """The agents file has errors; ``problems`` lists them all."""


def load_agents(path: str | Path) -> dict[str, str]:
    """Agent id -> its scope, ``PROV`` or ``PROV/COMMUNE`` with official zero-padded codes.
    Raises AgentsFileError with every problem of the file."""
    root, problems = yaml_file.read_tree(path)
    if problems:
        raise AgentsFileError(problems)
    checker = _AgentsChecker(str(path))
    scopes = checker.agents(root)
    errors = checker.errors()
    if errors:
        raise AgentsFileError(errors)
    return scopes


class _AgentsChecker(yaml_file.Checker):
    def agents(self, root: Node | None) -> dict[str, str]:
        if root is None:
            self.error(1, f"the file is empty / tệp rỗng; {USAGE}")
            return {}
        top = self.fields(root, "agents file", TOP_KEYS, required=("agents",))
        node = top.given("agents") if top is not None else None
        if node is None:
            return {}
        if not isinstance(node, Mapping):
            self.error(node, f"agents: {USAGE}")
            return {}
        scopes: dict[str, str] = {}
        lines: dict[str, int] = {}
        for key, value in node.value:
            agent = self.agent_id(key)
            scope = self.scope_of(value, agent or "?")
            if agent is None:
                continue
            self.unique(lines, agent, key, f"duplicate agent id '{agent}'")
            if scope is not None:
                scopes.setdefault(agent, scope)
        return scopes

    def agent_id(self, node: Node) -> str | None:
        text = self.raw(node, "agent id")
        if text is None:
            return None
        try:
            return envelope.check_agent_id(text)
        except ValueError as exc:
            self.error(node, str(exc))
            return None

    def scope_of(self, node: Node, agent: str) -> str | None:
        """``PROV`` or ``PROV/COMMUNE``, each code in the official list."""
        what = f"agent {agent}: scope"
        text = self.raw(node, what)
        if text is None:
            return None
        prov_text, slash, comm_text = text.strip("/").partition("/")
        prov, comm = official.province_code(prov_text), official.commune_code(comm_text)
        if not prov.isdigit() or (slash and not comm.isdigit()) or "/" in comm:
            self.error(node, f"{what}: '{text}' is not PROV or PROV/COMMUNE (e.g. 75 or "
                             "75/26041)")
            return None
        unit = official.provinces().get(prov)
        if unit is None:
            self.error(node, f"{what}: unknown province code '{prov}' (not in the official "
                             "list)")
            return None
        if slash and comm not in unit.communes:
            self.error(node, f"{what}: commune code {comm} is not in the official list of "
                             f"province {prov} ({unit.name})")
            return None
        return f"{prov}/{comm}" if slash else prov
