#include "vhostfe.h"
const char fe_hostile_kinds[] = "";
int fe_hostile(const struct fe_opts *o, const char *kind, int backend_pid) { (void)o; (void)kind; (void)backend_pid; return 2; }
