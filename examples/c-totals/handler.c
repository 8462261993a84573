// Totals per user in C (the typed world, with wit-bindgen's C bindings): a
// Kinesis record's partition key is the user and its data JSON such as
// {"amount": 12.5}. A record that is not a sale is reported as a batch item
// failure. (The "parser" below only looks for the amount: enough for a sample.)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "typed_handler.h"

#define MAX_USERS 64

struct total {
  char user[128];
  double amount;
};

// The number after `"amount":` in `data`, if there is one.
static bool amount_of(const uint8_t *data, size_t len, double *amount) {
  char text[1024];
  if (len >= sizeof text) return false;
  memcpy(text, data, len);
  text[len] = '\0';
  const char *key = strstr(text, "\"amount\"");
  if (!key) return false;
  const char *colon = strchr(key + 8, ':');
  if (!colon) return false;
  char *end;
  *amount = strtod(colon + 1, &end);
  return end != colon + 1;
}

static int by_user(const void *a, const void *b) {
  return strcmp(((const struct total *)a)->user, ((const struct total *)b)->user);
}

static void log_info(const char *message) {
  typed_handler_string_t text;
  typed_handler_string_set(&text, message);
  typed_handler_list_tuple2_string_string_t no_fields = {NULL, 0};
  eddy_handler_log_log(EDDY_HANDLER_LOG_LEVEL_INFO, &text, &no_fields);
}

bool exports_eddy_handler_typed_handle(exports_eddy_handler_typed_batch_t *batch,
                                       exports_eddy_handler_typed_context_t *context,
                                       exports_eddy_handler_typed_batch_response_t *ret,
                                       typed_handler_string_t *err) {
  // The arguments are handed over to this function: it frees them.
  exports_eddy_handler_typed_context_free(context);
  if (batch->records.tag != EDDY_HANDLER_TYPES_RECORDS_KINESIS) {
    typed_handler_string_dup(err, "c-totals reads Kinesis records only");
    exports_eddy_handler_typed_batch_free(batch);
    return false;
  }
  eddy_handler_types_list_kinesis_record_t *records = &batch->records.val.kinesis;
  struct total totals[MAX_USERS];
  size_t users = 0;
  // The failures' sequence numbers; the host frees the list after the call.
  ret->batch_item_failures.ptr = calloc(records->len ? records->len : 1, sizeof(typed_handler_string_t));
  ret->batch_item_failures.len = 0;
  ret->state.is_some = false;

  for (size_t i = 0; i < records->len; i++) {
    eddy_handler_types_kinesis_record_t *record = &records->ptr[i];
    double amount;
    if (!amount_of(record->data.ptr, record->data.len, &amount)) {
      typed_handler_string_dup_n(&ret->batch_item_failures.ptr[ret->batch_item_failures.len++],
                                 (const char *)record->sequence_number.ptr, record->sequence_number.len);
      continue;
    }
    size_t u = 0;
    while (u < users && (strlen(totals[u].user) != record->partition_key.len ||
                         memcmp(totals[u].user, record->partition_key.ptr, record->partition_key.len) != 0)) {
      u++;
    }
    if (u == users) {
      if (users == MAX_USERS || record->partition_key.len >= sizeof totals[u].user) continue;
      memcpy(totals[u].user, record->partition_key.ptr, record->partition_key.len);
      totals[u].user[record->partition_key.len] = '\0';
      totals[u].amount = 0;
      users++;
    }
    totals[u].amount += amount;
  }

  qsort(totals, users, sizeof totals[0], by_user);
  char line[4096];
  int n = snprintf(line, sizeof line, "c: %zu records, %zu failed; totals", records->len, ret->batch_item_failures.len);
  for (size_t u = 0; u < users && n > 0 && (size_t)n < sizeof line; u++) {
    n += snprintf(line + n, sizeof line - n, " %s=%g", totals[u].user, totals[u].amount);
  }
  log_info(line);
  exports_eddy_handler_typed_batch_free(batch);
  return true;
}
