# qt-runbooks: the two set-up commands are `make demo` and `make test`.
SHELL := /bin/bash
VENV ?= .venv
FAULT ?=
comma := ,
# FAULT=a,b -> --fault a --fault b
fault_args = $(foreach f,$(subst $(comma), ,$(1)),--fault $(f))
# sbin too: dockerd, sshd and useradd live there, and a root shell's PATH does not always have it.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH):/usr/local/sbin:/usr/sbin:/sbin
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PY := $(VENV)/bin/python
LABCTL := $(PY) lab/labctl

.PHONY: help venv docker prometheus setup system images lab-up lab-down demo ee ee-image test lint sanity pytest pytest-offline pytest-lab pytest-ee molecule bench clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

venv: $(VENV)/.installed  ## create the virtualenv with pinned deps
	@scripts/link_compose.sh $(VENV)
	@# ansible.cfg's collections_path: the checkout as quantum.runbooks (not in git: ansible-test forbids the link)
	@mkdir -p .collections/ansible_collections/quantum && ln -sfn ../../.. .collections/ansible_collections/quantum/runbooks

$(VENV)/.installed: requirements.txt requirements-dev.txt requirements-eda.txt pyproject.toml scripts/setup_venv.sh
	scripts/setup_venv.sh $(VENV)

docker:  ## make sure a Docker engine runs (installs docker.io as root)
	scripts/ensure_docker.sh

prometheus:  ## make sure promtool, prometheus and alertmanager are installed (Debian packages, as root)
	scripts/ensure_prometheus.sh

# The first run's slow steps side by side: the virtualenv beside the system steps, which run one
# after the other (apt takes one lock): the Docker engine, the SSH host's packages (openssh-server,
# sudo, acl), prometheus (WITH_PROMETHEUS=1, for the alert tests), the lab's base image.
base_image_step = $(if $(BASE_IMAGE),@echo "BASE_IMAGE=$(BASE_IMAGE): no local base image needed",lab/images/base/build_base.sh)

setup:  ## the virtualenv beside Docker (+ prometheus with WITH_PROMETHEUS=1) and the base image
	@$(MAKE) --no-print-directory -j2 venv system

system:
	scripts/ensure_docker.sh
	scripts/ensure_sshhost.sh
	$(if $(WITH_PROMETHEUS),scripts/ensure_prometheus.sh)
	$(if $(WITH_PROMETHEUS),scripts/ensure_java.sh)
	$(base_image_step)

images: venv docker  ## build the lab images (no registry needed)
	$(LABCTL) build

lab-up: images  ## start the lab; FAULT=a,b injects faults (list: lab/labctl faults)
	$(LABCTL) up $(call fault_args,$(FAULT))

lab-down: venv  ## stop the lab
	$(LABCTL) down

demo: setup  ## start the lab with FAULT (default executor_hang) and diagnose it
	@$(MAKE) --no-print-directory images
	$(LABCTL) up $(call fault_args,$(or $(FAULT),executor_hang)) >/dev/null
	ansible-playbook -i inventory/lab.yml diagnose.yml
	@echo; echo "Report: $(CURDIR)/reports/lab/diagnosis-latest.md (and .json)"; \
	 echo "The lab is still running with fault '$(or $(FAULT),executor_hang)'. Heal it: $(LABCTL) fault healthy; stop it: make lab-down"

# The AWX execution environment, built here without a registry or Galaxy (scripts/ee-offline.yml says what
# differs from execution-environment.yml, and why), then diagnose.yml in it the way AWX runs a job. These set
# nothing up: they need the venv, Docker and the lab's base image (`make setup`), `ee` the lab's SSH host too
# (`make lab-up`), and say which is missing. The image is rebuilt only when what it holds would change.
ee-image:  ## build the execution environment image qt-runbooks-ee:<version> offline (kept when up to date)
	@test -x $(PY) || { echo "ee: no virtualenv at $(VENV): run make venv" >&2; exit 1; }
	@$(PY) scripts/ee.py build

ee: ee-image  ## ee-image, then diagnose.yml in it with ansible-navigator over SSH on the lab: the verdict
	@$(PY) scripts/ee.py diagnose

test: export QT_REQUIRE_TOOLS := 1
test:  ## lint + offline tests + the EE image beside the lab tests + molecule, then the EE test (log: reports/test-offline.log)
	@$(MAKE) --no-print-directory setup WITH_PROMETHEUS=1
	@$(MAKE) --no-print-directory images
	@# The lab half mostly waits on the lab (time-based symptoms), so lint, the tests that do not touch
	@# it and the execution environment's build run beside it; their output is printed at the end. The
	@# EE test needs both the image and the lab, so it runs last.
	@mkdir -p reports
	@$(MAKE) --no-print-directory lint pytest-offline sanity ee-image >reports/test-offline.log 2>&1 & offline=$$!; \
	 $(MAKE) --no-print-directory pytest-lab molecule; lab=$$?; \
	 wait $$offline; off=$$?; \
	 echo "==== lint, offline tests, EE image (reports/test-offline.log) ===="; tail -n 60 reports/test-offline.log; \
	 $(MAKE) --no-print-directory pytest-ee; ee=$$?; \
	 echo "==== lab tests + molecule: $$([ $$lab = 0 ] && echo passed || echo FAILED);" \
	      "lint + offline tests + EE image: $$([ $$off = 0 ] && echo passed || echo FAILED);" \
	      "EE test: $$([ $$ee = 0 ] && echo passed || echo FAILED) ===="; \
	 [ $$lab = 0 ] && [ $$off = 0 ] && [ $$ee = 0 ]

lint: venv  ## ansible-lint (production profile) and ruff
	ruff check .
	ansible-lint --offline --profile production

sanity: venv  ## galaxy build + galaxy-importer + ansible-test sanity and units, offline, in a scratch copy
	scripts/sanity.sh

pytest: pytest-offline pytest-lab  ## all pytest tests, one half after the other

pytest-offline: venv  ## the tests that need no lab (unit, modules on a local simulator, remediation, alerts)
	pytest -m "not lab and not integration"

pytest-lab: venv images  ## the tests on the running lab (and its Redis), but the EE's
	pytest -m "(lab or integration) and not ee"

pytest-ee: venv images ee-image  ## diagnose.yml in the execution environment against the lab's SSH host
	pytest -m ee

SCENARIOS := $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml)))

molecule: venv
	@# a state left by an interrupted run would make Molecule skip `prepare`
	molecule reset $(addprefix -s ,$(SCENARIOS)) >/dev/null
	molecule test --all

bench: images  ## speed/memory ratios against a baseline measured in the same run
	$(PY) bench/diagnose.py
	$(PY) bench/restart.py
	$(PY) bench/trace.py
	$(PY) bench/cancel.py

clean: lab-down  ## stop the lab and remove generated files
	rm -rf reports lab/run
