# Build and install tako, its man pages, shell completions, systemd units and documentation.
#
#     make install                          # into /usr/local, as root
#     make install PREFIX=/usr DESTDIR=pkg  # staged, for a package
#     make uninstall                        # with the same variables as the install
#
# Where each file goes is listed in docs/install.md. The man pages and completion scripts
# are printed by the binary being installed (tako generate), so they match it exactly; the
# units get that binary's installed path in ExecStart=.

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/tako
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/site-functions
FISHCOMPDIR ?= $(DATADIR)/fish/vendor_completions.d
# systemd reads units from /usr/local/lib/systemd/system and /usr/lib/systemd/system, so
# the default follows PREFIX; name another directory for a PREFIX systemd does not read.
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
DESTDIR ?=

CARGO ?= cargo
# The binary to install. By default cargo builds it; BIN=path installs a binary built
# elsewhere without running cargo.
BIN ?= target/release/tako

# The path the units in contrib/systemd/ are written for; replaced by the installed one.
UNIT_BIN = /usr/local/bin/tako
UNITS = contrib/systemd/tako-fetch@.service contrib/systemd/tako-fetch@.timer
EXAMPLES = contrib/systemd/example-app.service contrib/systemd/app.tako
DOCS = README.md LICENSE docs/*.md

.PHONY: all install uninstall FORCE

all: $(BIN)

# cargo decides whether anything needs rebuilding. Under "sudo make install" cargo is
# often not on root's PATH: then the binary that "make" built before is installed.
target/release/tako: FORCE
	@if command -v $(CARGO) >/dev/null 2>&1; then \
	    echo "$(CARGO) build --release --locked"; \
	    $(CARGO) build --release --locked; \
	elif [ -x $@ ]; then \
	    echo "make: $(CARGO) not found; installing the $@ built before"; \
	else \
	    echo "make: $(CARGO) not found and $@ not built: run make as a user with cargo first" >&2; \
	    exit 1; \
	fi

install: $(BIN)
	@set -eu; \
	tmp=$$(mktemp -d); \
	trap 'rm -rf "$$tmp"' EXIT; \
	set -x; \
	install -d -m 0755 "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(MANDIR)/man1" \
	    "$(DESTDIR)$(BASHCOMPDIR)" "$(DESTDIR)$(ZSHCOMPDIR)" "$(DESTDIR)$(FISHCOMPDIR)" \
	    "$(DESTDIR)$(SYSTEMDUNITDIR)" "$(DESTDIR)$(DOCDIR)/examples"; \
	install -m 0755 "$(BIN)" "$(DESTDIR)$(BINDIR)/tako"; \
	mkdir "$$tmp/man"; \
	"$(BIN)" generate man --dir "$$tmp/man" >/dev/null; \
	install -m 0644 "$$tmp"/man/*.1 "$(DESTDIR)$(MANDIR)/man1/"; \
	"$(BIN)" generate completion bash > "$$tmp/tako.bash"; \
	"$(BIN)" generate completion zsh > "$$tmp/_tako"; \
	"$(BIN)" generate completion fish > "$$tmp/tako.fish"; \
	install -m 0644 "$$tmp/tako.bash" "$(DESTDIR)$(BASHCOMPDIR)/tako"; \
	install -m 0644 "$$tmp/_tako" "$(DESTDIR)$(ZSHCOMPDIR)/_tako"; \
	install -m 0644 "$$tmp/tako.fish" "$(DESTDIR)$(FISHCOMPDIR)/tako.fish"; \
	for f in $(UNITS) $(EXAMPLES); do \
	    sed -e 's|$(UNIT_BIN)|$(BINDIR)/tako|g' "$$f" > "$$tmp/$${f##*/}"; \
	done; \
	for f in $(UNITS); do \
	    install -m 0644 "$$tmp/$${f##*/}" "$(DESTDIR)$(SYSTEMDUNITDIR)/"; \
	done; \
	for f in $(EXAMPLES); do \
	    install -m 0644 "$$tmp/$${f##*/}" "$(DESTDIR)$(DOCDIR)/examples/"; \
	done; \
	install -m 0644 $(DOCS) "$(DESTDIR)$(DOCDIR)/"

# Removes exactly what install puts there. Only tako's own documentation directory goes
# too; the others (bin, man1, the completion and unit directories) are shared.
uninstall:
	@set -eu; set -x; \
	rm -f "$(DESTDIR)$(BINDIR)/tako" "$(DESTDIR)$(MANDIR)"/man1/tako.1 \
	    "$(DESTDIR)$(MANDIR)"/man1/tako-*.1 \
	    "$(DESTDIR)$(BASHCOMPDIR)/tako" "$(DESTDIR)$(ZSHCOMPDIR)/_tako" \
	    "$(DESTDIR)$(FISHCOMPDIR)/tako.fish"; \
	for f in $(UNITS); do rm -f "$(DESTDIR)$(SYSTEMDUNITDIR)/$${f##*/}"; done; \
	for f in $(EXAMPLES); do rm -f "$(DESTDIR)$(DOCDIR)/examples/$${f##*/}"; done; \
	for f in $(DOCS); do rm -f "$(DESTDIR)$(DOCDIR)/$${f##*/}"; done; \
	rmdir "$(DESTDIR)$(DOCDIR)/examples" "$(DESTDIR)$(DOCDIR)" 2>/dev/null || true

FORCE:
