"""Checks OpenLineage run events against the OpenLineage project's own model.

Usage: python openlineage_check.py EVENT.json...

No package on a registry this project's CI reaches ships the spec's JSON
Schema (OpenLineage.json) itself, so the events are checked against the
model the OpenLineage project generates from that schema and publishes as
`openlineage-python` (`openlineage.client.generated`). Every object is built
with the model's own classes, strictly:

- a field the schema does not define is an error, and so is a required field
  that is missing; a value of the wrong JSON type is an error;
- the model's validators run (event time in ISO 8601 with a time, run ids
  that are UUIDs, producer and schema URLs that parse);
- `schemaURL` and every facet's `_schemaURL` must be the URL of the schema
  version the model implements;
- the built event, serialised back by the client's `Serde`, must equal the
  input (so nothing was dropped or renamed on the way).

Prints `N events` and exits 0, or prints each problem and exits 1.
"""

import enum
import json
import sys
import types
import typing

import attr
from openlineage.client.generated import (
    base,
    dataset_version_dataset,
    error_message_run,
    input_statistics_input_dataset,
    job_type_job,
    output_statistics_output_dataset,
    parent_run,
    processing_engine_run,
    schema_dataset,
)
from openlineage.client.serde import Serde

# The facets the lake writes, by where they sit and their key.
FACETS = {
    ("run", "parent"): parent_run.ParentRunFacet,
    ("run", "processing_engine"): processing_engine_run.ProcessingEngineRunFacet,
    ("run", "errorMessage"): error_message_run.ErrorMessageRunFacet,
    ("job", "jobType"): job_type_job.JobTypeJobFacet,
    ("dataset", "schema"): schema_dataset.SchemaDatasetFacet,
    ("dataset", "version"): dataset_version_dataset.DatasetVersionDatasetFacet,
    ("input", "inputStatistics"): input_statistics_input_dataset.InputStatisticsInputDatasetFacet,
    ("output", "outputStatistics"): output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet,
}

# Which facet bag a field of a class is.
BAGS = {
    "facets": {
        base.Run: "run",
        base.Job: "job",
        base.InputDataset: "dataset",
        base.OutputDataset: "dataset",
    },
    "inputFacets": {base.InputDataset: "input"},
    "outputFacets": {base.OutputDataset: "output"},
}


class Invalid(Exception):
    pass


def build(cls, data, path):
    if not isinstance(data, dict):
        raise Invalid(f"{path}: an object is expected, not {data!r}")
    attr.resolve_types(cls)
    fields = {a.name: a for a in attr.fields(cls)}
    kwargs = {}
    for key, value in data.items():
        field = fields.get(key)
        if field is None:
            raise Invalid(f"{path}.{key}: not a field of {cls.__name__}")
        if not field.init:
            expected = cls._get_schema()
            if value != expected:
                raise Invalid(f"{path}.{key}: {value!r}, the model's schema is {expected!r}")
            continue
        bag = BAGS.get(key, {}).get(cls)
        if bag is not None:
            kwargs[field.alias] = facets(bag, value, f"{path}.{key}")
        else:
            kwargs[field.alias] = convert(field.type, value, f"{path}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise Invalid(f"{path}: {cls.__name__}: {e}") from e


def facets(bag, value, path):
    if not isinstance(value, dict):
        raise Invalid(f"{path}: an object is expected")
    built = {}
    for key, facet in value.items():
        cls = FACETS.get((bag, key))
        if cls is None:
            raise Invalid(f"{path}.{key}: not a facet the check knows for a {bag}")
        built[key] = build(cls, facet, f"{path}.{key}")
    return built


def convert(kind, value, path):
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = [k for k in typing.get_args(kind) if k is not type(None)]
        if value is None:
            return None
        errors = []
        for option in options:
            try:
                return convert(option, value, path)
            except Invalid as e:
                errors.append(str(e))
        raise Invalid("; ".join(errors))
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"{path}: a list is expected")
        (item,) = typing.get_args(kind)
        return [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{path}: an object is expected")
        _, item = typing.get_args(kind)
        return {k: convert(item, v, f"{path}.{k}") for k, v in value.items()}
    if isinstance(kind, type) and attr.has(kind):
        return build(kind, value, path)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        try:
            return kind(value)
        except ValueError as e:
            raise Invalid(f"{path}: {e}") from e
    if kind is bool:
        ok = isinstance(value, bool)
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif kind is str:
        ok = isinstance(value, str)
    elif kind is typing.Any:
        ok = True
    else:
        raise Invalid(f"{path}: the check cannot read the type {kind!r}")
    if not ok:
        raise Invalid(f"{path}: {value!r} is not a {kind.__name__}")
    return value


def pruned(value):
    """The value without empty objects, empty lists and nulls, which the
    schema treats as absent and the client's serialiser leaves out."""
    if isinstance(value, dict):
        kept = {k: pruned(v) for k, v in value.items()}
        return {k: v for k, v in kept.items() if v not in (None, {}, [])}
    if isinstance(value, list):
        return [pruned(v) for v in value]
    return value


def check(path):
    with open(path) as f:
        data = json.load(f)
    event = build(base.RunEvent, data, "event")
    back = json.loads(Serde.to_json(event))
    if pruned(back) != pruned(data):
        raise Invalid(f"event: the model's serialisation differs:\n{json.dumps(pruned(back), sort_keys=True)}\n{json.dumps(pruned(data), sort_keys=True)}")


def main():
    problems = []
    for path in sys.argv[1:]:
        try:
            check(path)
        except Invalid as e:
            problems.append(f"{path}: {e}")
    for problem in problems:
        print(problem)
    if problems:
        sys.exit(1)
    print(f"{len(sys.argv) - 1} events")


if __name__ == "__main__":
    main()
