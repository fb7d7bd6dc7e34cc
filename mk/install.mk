# make install DESTDIR=... PREFIX=/usr
#   PREFIX/bin/cfsroot                             the single executable (never stripped:
#                                                  strip breaks the Node SEA blob)
#   DRACUT_MODULES_DIR/90cfsroot/                  dracut module (dracut --add cfsroot)
#   PREFIX/lib/cfsroot/initramfs/{build.sh,init}   the minimal non-systemd initramfs builder
# dracut looks for modules in /usr/lib/dracut/modules.d only, so the module is
# found by dracut when PREFIX=/usr (or DRACUT_MODULES_DIR points there).

CFSROOT_LIBDIR ?= $(PREFIX)/lib/cfsroot

install: dist/cfsroot
	install -D -m 0755 dist/cfsroot $(DESTDIR)$(PREFIX)/bin/cfsroot
	install -d $(DESTDIR)$(DRACUT_MODULES_DIR)/90cfsroot
	install -m 0755 dracut/90cfsroot/module-setup.sh dracut/90cfsroot/cfsroot-hook.sh \
	  $(DESTDIR)$(DRACUT_MODULES_DIR)/90cfsroot/
	install -m 0644 dracut/90cfsroot/cfsroot.service $(DESTDIR)$(DRACUT_MODULES_DIR)/90cfsroot/
	install -D -m 0755 initramfs/build.sh $(DESTDIR)$(CFSROOT_LIBDIR)/initramfs/build.sh
	install -D -m 0755 initramfs/init $(DESTDIR)$(CFSROOT_LIBDIR)/initramfs/init
	@case "$(DRACUT_MODULES_DIR)" in /usr/lib/dracut/modules.d) ;; \
	  *) echo "note: dracut reads modules from /usr/lib/dracut/modules.d; $(DRACUT_MODULES_DIR) is not it (use PREFIX=/usr)";; esac
