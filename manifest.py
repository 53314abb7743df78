# Freezes the uhttpd Python facade.  Used by the unix variant and the ESP32
# board alike (include() it from a board manifest).
module("uhttpd.py", base_path="frozen", opt=3)
module("uhttpd_repl.py", base_path="frozen", opt=3)
module("uhttpd_admin.py", base_path="frozen", opt=3)
module("uhttpd_admin_page.py", base_path="frozen", opt=3)
