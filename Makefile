# qt-runbooks: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
FAULT ?=
comma := ,
# FAULT=a,b -> --fault a --fault b
fault_args = $(foreach f,$(subst $(comma), ,$(1)),--fault $(f))
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PY := $(VENV)/bin/python
LABCTL := $(PY) lab/labctl

.PHONY: help venv docker prometheus images lab-up lab-down demo test lint pytest molecule bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed  ## create the virtualenv with pinned deps
	@scripts/link_compose.sh $(VENV)

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-eda.txt pyproject.toml scripts/setup_venv.sh
	scripts/setup_venv.sh $(VENV)

docker:  ## make sure a Docker engine runs (installs docker.io as root)
	scripts/ensure_docker.sh

prometheus:  ## make sure promtool, prometheus and alertmanager are installed (Debian packages, as root)
	scripts/ensure_prometheus.sh

images: venv docker  ## build the lab images (no registry needed)
	$(LABCTL) build

lab-up: images  ## start the lab; FAULT=a,b injects faults (list: lab/labctl faults)
	$(LABCTL) up $(call fault_args,$(FAULT))

lab-down: venv  ## stop the lab
	$(LABCTL) down

demo: images  ## start the lab with FAULT (default executor_hang) and diagnose it
	$(LABCTL) up $(call fault_args,$(or $(FAULT),executor_hang)) >/dev/null
	ansible-playbook -i inventory/lab.yml diagnose.yml
	@echo; echo "Report: $(CURDIR)/reports/lab/diagnosis-latest.md (and .json)"; \
	 echo "The lab is still running with fault '$(or $(FAULT),executor_hang)'. Heal it: $(LABCTL) fault healthy; stop it: make lab-down"

test: lint images prometheus  ## lint, pytest (unit + lab + alerts + remediation), molecule
	$(MAKE) pytest molecule

lint: venv  ## ansible-lint (production profile) and ruff
	ruff check .
	ansible-lint --offline --profile production

pytest: venv
	pytest

SCENARIOS := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

molecule: venv
	@# a state left by an interrupted run would make Molecule skip `prepare`
	molecule reset $(addprefix -s ,$(SCENARIOS)) >/dev/null
	molecule test --all

bench: images  ## speed/memory ratios against a baseline measured in the same run
	$(PY) bench/diagnose.py
	$(PY) bench/restart.py

clean: lab-down  ## stop the lab and remove generated files
	rm -rf reports lab/run
