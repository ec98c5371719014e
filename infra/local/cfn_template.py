"""template.yaml as data: the YAML loader for CloudFormation's short tags and a small resolver for
the intrinsic functions Tollgate's template uses.

The local run (infra/local-lambda.sh) and the cold-start benchmark (infra/bench/coldstart.py)
create the table, queues and secrets from the template's own resource properties and give the
functions the environment the template gives them, so what runs locally is what `sam deploy`
would create — not a hand-kept copy. This module only reads; local_stack.py creates.

Supported intrinsics: Ref (parameters with their defaults, pseudo parameters, resources already
created), Fn::GetAtt, Fn::Sub (both forms), Fn::If / Fn::Equals / Fn::Not / Fn::And / Fn::Or /
Condition, Fn::Join, Fn::Select. Anything else raises Unresolvable, naming where it was found, so a
template change this code does not understand fails loudly instead of being approximated.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

#: The value `!Ref AWS::NoValue` resolves to: the key holding it is dropped.
NO_VALUE = object()


class Unresolvable(Exception):
    """An intrinsic function or reference the local stack cannot resolve."""


# ---- loading ---------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns `!Ref X` into {"Ref": X}, `!GetAtt A.B` into {"Fn::GetAtt": [A, B]}
    and any other `!Name v` into {"Fn::Name": v} — the long form CloudFormation itself uses."""


def _construct_tag(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "Condition":
        return {"Condition": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


_CfnLoader.add_multi_constructor("!", _construct_tag)


def load_template(path: Path) -> dict:
    """Parses template.yaml (CloudFormation short tags included) into plain Python data."""
    with open(path, encoding="utf-8") as f:
        return yaml.load(f, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


# ---- resolving -------------------------------------------------------------------------------------


@dataclass
class Resolver:
    """Resolves intrinsic functions against parameter values and the resources created so far.

    `refs` maps a logical id to what `Ref` returns for it; `attributes` maps a logical id to its
    `Fn::GetAtt` attributes. Both are filled by local_stack.py as it creates resources.
    """

    template: dict
    region: str
    account_id: str
    stack_name: str
    parameters: dict[str, Any] = field(default_factory=dict)
    refs: dict[str, Any] = field(default_factory=dict)
    attributes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Parameter defaults, then explicit overrides (like `sam deploy --parameter-overrides`).
        values = {
            name: spec["Default"]
            for name, spec in self.template.get("Parameters", {}).items()
            if "Default" in spec
        }
        values.update(self.parameters)
        self.parameters = values

    def pseudo(self, name: str) -> Any:
        return {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::Partition": "aws",
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::NoValue": NO_VALUE,
        }.get(name)

    def ref(self, name: str) -> Any:
        if name in self.parameters:
            return self.parameters[name]
        value = self.pseudo(name)
        if value is not None:
            return value
        if name in self.refs:
            return self.refs[name]
        raise Unresolvable(f"Ref {name}: not a parameter, pseudo parameter or created resource")

    def get_att(self, resource: str, attribute: str) -> Any:
        try:
            return self.attributes[resource][attribute]
        except KeyError:
            raise Unresolvable(f"Fn::GetAtt {resource}.{attribute}: not created locally") from None

    def condition(self, name: str) -> bool:
        conditions = self.template.get("Conditions", {})
        if name not in conditions:
            raise Unresolvable(f"Condition {name} is not defined")
        return bool(self.resolve(conditions[name]))

    def sub(self, text: str, variables: dict[str, Any]) -> str:
        def replace(m: re.Match) -> str:
            name = m.group(1)
            if name.startswith("!"):  # ${!Literal} is the literal ${Literal}
                return "${" + name[1:] + "}"
            if name in variables:
                value = variables[name]
            elif "." in name:
                value = self.get_att(*name.split(".", 1))
            else:
                value = self.ref(name)
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        """The value of `node` with every intrinsic function evaluated; NO_VALUE entries dropped."""
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key == "Fn::GetAtt":
                return self.get_att(arg[0], arg[1])
            if key == "Fn::Sub":
                if isinstance(arg, str):
                    return self.sub(arg, {})
                text, variables = arg
                return self.sub(text, {k: self.resolve(v) for k, v in variables.items()})
            if key == "Fn::If":
                name, if_true, if_false = arg
                return self.resolve(if_true if self.condition(name) else if_false)
            if key == "Fn::Equals":
                a, b = (self.resolve(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Fn::And":
                return all(self.resolve(x) for x in arg)
            if key == "Fn::Or":
                return any(self.resolve(x) for x in arg)
            if key == "Fn::Join":
                separator, values = arg
                return separator.join(str(v) for v in self.resolve(values))
            if key == "Fn::Select":
                index, values = arg
                return self.resolve(values)[int(self.resolve(index))]
            if key.startswith("Fn::"):
                raise Unresolvable(f"{key} is not supported by the local stack")
        out = {}
        for k, v in node.items():
            value = self.resolve(v)
            if value is not NO_VALUE:
                out[k] = value
        return out


# ---- reading the template's functions -------------------------------------------------------------


@dataclass(frozen=True)
class Function:
    """One AWS::Serverless::Function: its logical id, binary (= functions/<binary> crate) and the
    unresolved environment variables (Globals merged with its own, its own winning)."""

    logical_id: str
    binary: str
    environment: dict[str, Any]
    memory_size: Any
    timeout: Any


def functions(template: dict) -> list[Function]:
    """Every AWS::Serverless::Function of the template, in template order."""
    globals_ = template.get("Globals", {}).get("Function", {})
    global_env = globals_.get("Environment", {}).get("Variables", {})
    found = []
    for logical_id, resource in template.get("Resources", {}).items():
        if resource.get("Type") != "AWS::Serverless::Function":
            continue
        props = resource.get("Properties", {})
        binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
        if not binary:
            raise Unresolvable(f"{logical_id} has no Metadata.BuildProperties.Binary")
        env = dict(global_env)
        env.update(props.get("Environment", {}).get("Variables", {}))
        found.append(
            Function(
                logical_id=logical_id,
                binary=binary,
                environment=env,
                memory_size=props.get("MemorySize", globals_.get("MemorySize")),
                timeout=props.get("Timeout", globals_.get("Timeout")),
            )
        )
    return found
