// {{name}}: each record's data is an order as JSON, such as {"amount": 12.5}.
// A record that is not one is reported as a batch item failure, so the host
// retries from it. (Looking for "amount" is all the parsing this sample does.)
// Build with `eddy build .`; try with
// `eddy generate-event kinesis --data '{"amount": 3}' > event.json` and
// `eddy invoke functions/{{name}}.wasm --event event.json`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "typed_handler.h"

static bool amount_of(const uint8_t *data, size_t len, double *amount) {
  char text[1024];
  if (len >= sizeof text) return false;
  memcpy(text, data, len);
  text[len] = '\0';
  const char *key = strstr(text, "\"amount\"");
  const char *colon = key ? strchr(key + 8, ':') : NULL;
  if (!colon) return false;
  char *end;
  *amount = strtod(colon + 1, &end);
  return end != colon + 1;
}

bool exports_eddy_handler_typed_handle(exports_eddy_handler_typed_batch_t *batch,
                                       exports_eddy_handler_typed_context_t *context,
                                       exports_eddy_handler_typed_batch_response_t *ret,
                                       typed_handler_string_t *err) {
  ret->batch_item_failures.ptr = NULL;
  ret->batch_item_failures.len = 0;
  ret->state.is_some = false;
  if (batch->records.tag != EDDY_HANDLER_TYPES_RECORDS_KINESIS) {
    typed_handler_string_dup(err, "this handler reads Kinesis records");
    return false;
  }
  eddy_handler_types_list_kinesis_record_t *records = &batch->records.val.kinesis;
  ret->batch_item_failures.ptr = calloc(records->len ? records->len : 1, sizeof(typed_handler_string_t));
  double total = 0;
  for (size_t i = 0; i < records->len; i++) {
    eddy_handler_types_kinesis_record_t *record = &records->ptr[i];
    double amount;
    if (amount_of(record->data.ptr, record->data.len, &amount)) {
      total += amount;
    } else {
      typed_handler_string_dup_n(&ret->batch_item_failures.ptr[ret->batch_item_failures.len++],
                                 (const char *)record->sequence_number.ptr, record->sequence_number.len);
    }
  }
  char line[512];
  snprintf(line, sizeof line, "%.*s: %zu records, %zu failed; total %g", (int)context->function_name.len,
           (const char *)context->function_name.ptr, records->len, ret->batch_item_failures.len, total);
  typed_handler_string_t message;
  typed_handler_string_set(&message, line);
  typed_handler_list_tuple2_string_string_t no_fields = {NULL, 0};
  eddy_handler_log_log(EDDY_HANDLER_LOG_LEVEL_INFO, &message, &no_fields);
  // The arguments were handed over to this function.
  exports_eddy_handler_typed_batch_free(batch);
  exports_eddy_handler_typed_context_free(context);
  return true;
}
