/* datapath.c: the table of data paths selectable per export (datapath=NAME). */
#include <string.h>

#include "datapath/datapath.h"

static const struct datapath *const datapaths[] = {
  &datapath_copy,
  NULL,
};

const struct datapath *datapath_find(const char *name)
{
  for (size_t i = 0; datapaths[i]; i++)
    if (!strcmp(datapaths[i]->name, name))
      return datapaths[i];
  return NULL;
}
