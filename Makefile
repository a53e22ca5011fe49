# Entry points for people; CI runs scripts/setup.sh && scripts/test.sh (README "Tests").
.DEFAULT_GOAL := help
.PHONY: help demo e2e test

help: ## this list
	@awk -F':.*## ' '/^[a-z0-9-]+:.*## / { printf "  make %-6s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

demo: ## the appliance in namespaces (root, Debian 12): setup, build, ping, TCP over 2 WANs, wan1 cut; ends with a RESULT line
	scripts/demo-appliance.sh

e2e: ## the end-to-end tests (root): release tquicd/tquicctl, then pytest Tests/e2e
	scripts/e2e.sh

test: ## what CI runs: scripts/setup.sh, then scripts/test.sh
	scripts/setup.sh
	scripts/test.sh
