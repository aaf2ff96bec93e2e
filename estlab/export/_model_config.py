"""TF Serving's model config for ``estlab serve``: which models, where, which versions.

``--model-config-file`` takes TF Serving's ``ModelServerConfig``
(``tensorflow_serving/config/model_server_config.proto``) as text proto or
JSON, parsed with the ``protobuf`` package (the messages are declared here in
code, as ``_example_proto`` declares tf.train.Example)::

  model_config_list {
    config {
      name: "penguins"  base_path: "/models/penguins"  model_platform: "estlab"
      model_version_policy { latest { num_versions: 2 } }  # | all {} | specific { versions: 1 }
      version_labels { key: "stable" value: 1 }
    }
  }

Each ``config`` becomes a ``ModelConfig`` (its policy picks the versions to
serve from those on disk, ``versions_on_disk``); ``_registry.Registry`` loads
and serves them.

Example:
  >>> parse_config('model_config_list { config { name: "m" base_path: "/m" } }')
  [ModelConfig(name='m', base_path='/m', policy='latest', num_versions=1, versions=(), labels={})]
"""
from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import (descriptor_pb2, descriptor_pool, json_format,
                             message_factory, text_format)

from estlab.export import _format

__all__ = ["ModelConfig", "ModelConfigError", "ModelServerConfig",
           "parse_config", "read_config_file", "versions_on_disk"]

_log = logging.getLogger("estlab.serve")

PLATFORMS = ("", "tensorflow", "estlab")  # what an estlab export may say
_URL_NAME = re.compile(r"[^/:\s]+")

_F = descriptor_pb2.FieldDescriptorProto


def _file() -> descriptor_pb2.FileDescriptorProto:
  """model_server_config.proto's messages estlab reads (package tensorflow.serving).

  ``logging_config`` and ``custom_model_config`` are left out: a file that
  sets them fails to parse with a message naming the field.
  """
  file = descriptor_pb2.FileDescriptorProto(
      name="estlab/export/tf_serving_model_config.proto",
      package="tensorflow.serving", syntax="proto3")
  repeated, optional = _F.LABEL_REPEATED, _F.LABEL_OPTIONAL

  def message(name, fields, parent=None):
    msg = (parent.nested_type if parent else file.message_type).add(name=name)
    for number, field, label, kind, type_name in fields:
      added = msg.field.add(name=field, number=number, label=label, type=kind)
      if type_name:
        added.type_name = type_name
    return msg

  source = message("FileSystemStoragePathSourceConfig", [])
  policy = message("ServableVersionPolicy", [
      (100, "latest", optional, _F.TYPE_MESSAGE, ".tensorflow.serving."
       "FileSystemStoragePathSourceConfig.ServableVersionPolicy.Latest"),
      (101, "all", optional, _F.TYPE_MESSAGE, ".tensorflow.serving."
       "FileSystemStoragePathSourceConfig.ServableVersionPolicy.All"),
      (102, "specific", optional, _F.TYPE_MESSAGE, ".tensorflow.serving."
       "FileSystemStoragePathSourceConfig.ServableVersionPolicy.Specific")],
                   source)
  policy.oneof_decl.add(name="policy_choice")
  for field in policy.field:
    field.oneof_index = 0
  message("Latest", [(1, "num_versions", optional, _F.TYPE_UINT32, None)],
          policy)
  message("All", [], policy)
  message("Specific", [(1, "versions", repeated, _F.TYPE_INT64, None)], policy)
  config = message("ModelConfig", [
      (1, "name", optional, _F.TYPE_STRING, None),
      (2, "base_path", optional, _F.TYPE_STRING, None),
      (4, "model_platform", optional, _F.TYPE_STRING, None),
      (7, "model_version_policy", optional, _F.TYPE_MESSAGE,
       ".tensorflow.serving.FileSystemStoragePathSourceConfig."
       "ServableVersionPolicy"),
      (8, "version_labels", repeated, _F.TYPE_MESSAGE,
       ".tensorflow.serving.ModelConfig.VersionLabelsEntry")])
  entry = message("VersionLabelsEntry", [
      (1, "key", optional, _F.TYPE_STRING, None),
      (2, "value", optional, _F.TYPE_INT64, None)], config)
  entry.options.map_entry = True
  message("ModelConfigList", [
      (1, "config", repeated, _F.TYPE_MESSAGE,
       ".tensorflow.serving.ModelConfig")])
  server = message("ModelServerConfig", [
      (1, "model_config_list", optional, _F.TYPE_MESSAGE,
       ".tensorflow.serving.ModelConfigList")])
  server.oneof_decl.add(name="config")
  server.field[0].oneof_index = 0
  return file


_POOL = descriptor_pool.DescriptorPool()  # private: TF Serving's may hold these
_POOL.Add(_file())
ModelServerConfig = message_factory.GetMessageClass(
    _POOL.FindMessageTypeByName("tensorflow.serving.ModelServerConfig"))


class ModelConfigError(ValueError):
  """A model config file that cannot be served; the message names file and field."""


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """One model: its URL name, base path, version policy and labels.

  Attributes:
    name: ``NAME`` in ``/v1/models/NAME``.
    base_path: the directory holding ``<version>/`` exports (absolute), or an
      export directory itself (its one version is its directory's name).
    policy: ``'latest'``, ``'all'`` or ``'specific'`` (TF Serving's).
    num_versions: how many of the newest versions ``'latest'`` serves.
    versions: the versions ``'specific'`` serves.
    labels: ``{label: version}`` (``version_labels``).

  Example:
    >>> ModelConfig('m', '/models/m', num_versions=2).aspired(
    ...     {'1': '/models/m/1', '2': '/models/m/2', '3': '/models/m/3'})
    {'3': '/models/m/3', '2': '/models/m/2'}
  """
  name: str
  base_path: str
  policy: str = "latest"
  num_versions: int = 1
  versions: tuple = ()
  labels: Mapping = dataclasses.field(default_factory=dict)

  def aspired(self, on_disk: Mapping[str, str]) -> dict[str, str]:
    """The versions (of ``{version: path}`` on disk) the policy serves, newest first."""
    ordered = sorted(on_disk, key=order, reverse=True)
    if self.policy == "all":
      chosen = ordered
    elif self.policy == "specific":
      chosen = [v for v in ordered if v.isdigit() and int(v) in self.versions]
    else:
      chosen = ordered[:self.num_versions]
    return {v: on_disk[v] for v in chosen}

  def describe_policy(self) -> str:
    if self.policy == "latest":
      return f"latest {{ num_versions: {self.num_versions} }}"
    if self.policy == "specific":
      return f"specific {{ versions: {list(self.versions)} }}"
    return "all {}"


def order(version: str) -> tuple:
  """Versions in number order (an export directory's own name sorts first)."""
  return (version.isdigit(), int(version) if version.isdigit() else 0, version)


def versions_on_disk(base_path: str) -> dict[str, str]:
  """``{version: directory}`` of the complete exports under ``base_path``.

  A version is a directory named by a number holding ``estlab_export.json``
  (the exporter writes ``temp-*`` and renames it when whole; a directory
  still being copied is not a version until its description is there, and
  its checksums refuse it until every file is). A ``base_path`` that is an
  export itself is one version named after its directory.
  """
  if os.path.isfile(os.path.join(base_path, _format.DESCRIPTION)):
    return {os.path.basename(base_path): base_path}
  try:
    names = os.listdir(base_path)
  except OSError:
    return {}
  return {name: os.path.join(base_path, name) for name in names
          if _format.is_version_name(name) and
          os.path.isfile(os.path.join(base_path, name, _format.DESCRIPTION))}


def one_line(error: Exception) -> str:
  return " ".join(str(error).split()).rstrip(".")


def parse_config(text: str, source: str = "<model config>") -> list[ModelConfig]:
  """Parses a ``ModelServerConfig`` (text proto, or JSON if it starts with ``{``).

  Example:
    >>> [c.name for c in parse_config(
    ...     'model_config_list { config { name: "a" base_path: "/m/a" } }')]
    ['a']

  Raises:
    ModelConfigError: it does not parse, or a field cannot be served; one
      line naming ``source`` and the field (``model_config_list.config[1].name``).
  """
  message = ModelServerConfig()
  try:
    if text.lstrip().startswith("{"):
      json_format.Parse(text, message)
    else:
      text_format.Parse(text, message)
  except (text_format.ParseError, json_format.ParseError) as e:
    hint = ""
    if re.search(r"logging_config|loggingConfig|custom_model_config|"
                 r"customModelConfig|model_type|modelType", str(e)):
      hint = ("; estlab serve does not support that field (request logging, "
              "custom configs, the deprecated model_type): remove it")
    raise ModelConfigError(f"{source}: {one_line(e)}{hint}.") from None
  if message.WhichOneof("config") is None or not message.model_config_list.config:
    raise ModelConfigError(
        f"{source}: model_config_list has no config; serve at least one "
        "model, e.g. model_config_list { config { name: \"m\" base_path: "
        "\"/models/m\" } }.")
  configs, seen = [], set()
  for i, proto in enumerate(message.model_config_list.config):
    configs.append(_model_config(proto, f"{source}: model_config_list.config[{i}]"))
    if proto.name in seen:
      raise ModelConfigError(f"{source}: model_config_list.config[{i}].name: "
                             f"{proto.name!r} is configured twice; give each "
                             "model its own name.")
    seen.add(proto.name)
  return configs


def _model_config(proto: Any, where: str) -> ModelConfig:
  if not _URL_NAME.fullmatch(proto.name):
    raise ModelConfigError(
        f"{where}.name: {proto.name!r} cannot appear in a URL path; use "
        "letters, digits, '_', '-' or '.', e.g. name: \"penguins\".")
  if not proto.base_path:
    raise ModelConfigError(
        f"{where}.base_path: empty; give the directory holding the model's "
        "<version>/ exports (export_saved_model's export_dir_base).")
  if proto.model_platform not in PLATFORMS:
    raise ModelConfigError(
        f"{where}.model_platform: {proto.model_platform!r} is not served by "
        "estlab serve, which serves estlab exports; use model_platform: "
        "\"tensorflow\" (TF Serving's), \"estlab\", or leave it out.")
  fields = {}
  choice = proto.model_version_policy.WhichOneof("policy_choice")
  if choice == "latest":
    fields["num_versions"] = max(proto.model_version_policy.latest.num_versions, 1)
  elif choice == "specific":
    versions = tuple(proto.model_version_policy.specific.versions)
    if not versions:
      raise ModelConfigError(
          f"{where}.model_version_policy.specific.versions: empty; list the "
          "versions to serve, e.g. specific { versions: 1 versions: 2 }.")
    fields["versions"] = versions
  labels = dict(proto.version_labels)
  for label in labels:
    if not _URL_NAME.fullmatch(label):
      raise ModelConfigError(
          f"{where}.version_labels: label {label!r} cannot appear in "
          "/v1/models/NAME/labels/LABEL; use letters, digits, '_', '-' or "
          "'.', e.g. key: \"stable\".")
  return ModelConfig(proto.name, os.path.abspath(proto.base_path),
                     choice or "latest", labels=labels, **fields)


def read_config_file(path: str | os.PathLike) -> list[ModelConfig]:
  """``parse_config`` of a file (``--model-config-file``).

  Raises:
    ModelConfigError: the file cannot be read or served (one line).
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read()
  except (OSError, UnicodeDecodeError) as e:
    raise ModelConfigError(f"{path}: cannot be read as a model config "
                           f"({one_line(e)}); pass a ModelServerConfig text "
                           "proto or JSON file.") from None
  return parse_config(text, path)
