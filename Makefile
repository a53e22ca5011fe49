# Entry points for people; CI runs scripts/setup.sh && scripts/test.sh (README "Tests").
.DEFAULT_GOAL := help
.PHONY: help demo e2e test lint format deb apt-repo test-packages

help: ## this list
	@awk -F':.*## ' '/^[a-z0-9-]+:.*## / { printf "  make %-6s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

demo: ## the appliance in namespaces (root, Debian 12): setup, build, ping, TCP over 2 WANs, wan1 cut; ends with a RESULT line
	scripts/demo-appliance.sh

e2e: ## the end-to-end tests (root): release tquicd/tquicctl, then pytest Tests/e2e
	scripts/e2e.sh

test: ## what CI runs: scripts/setup.sh, then scripts/test.sh
	scripts/setup.sh
	scripts/test.sh

lint: ## swift format lint --strict over Sources and Tests with the committed .swift-format (docs/code-style.md)
	scripts/lint.sh

format: ## let swift format rewrite Sources and Tests in the house style, then lint what is left
	scripts/lint.sh --fix

deb: ## the Debian packages tquic-router and tquic-vps into .build-pkg/deb (dpkg-buildpackage -us -uc -b; docs/packaging.md)
	scripts/package.sh

apt-repo: deb ## a signed apt repository of them in .build-pkg/apt (a throwaway key unless TQUIC_APT_GNUPGHOME is set)
	scripts/apt-repo.sh

test-packages: ## the package tests (root): lintian, install/purge in a debootstrapped root, apt, systemd-nspawn boot
	Tests/pkg/test-packages.sh
