--[[ deadletter: write one dead letter (the envelope bytes untouched, plus why it died).

dead_letter(dlq, envelope, reason, error_type, error, traceback, attempts, consumer,
            group, first_failure_ms, last_failure_ms, stream_id)
The field names are those admin/dlq.py reads back.
]]
local function dead_letter(dlq, envelope, reason, error_type, err, tb, attempts, consumer,
                           group, first_ms, last_ms, stream_id)
  call('XADD', dlq, '*', 'm', envelope, 'reason', reason, 'error_type', error_type,
       'error', err, 'traceback', tb, 'attempts', attempts, 'consumer', consumer,
       'group', group, 'first_failure_ms', first_ms, 'last_failure_ms', last_ms,
       'stream_id', stream_id)
end

-- envelope_of(fields): the envelope ("m") of a stream entry's flat field list, or nil
-- when the entry has none (a raw write that did not come from publish)
local function envelope_of(fields)
  for i = 1, #fields, 2 do
    if fields[i] == 'm' then return fields[i + 1] end
  end
  return nil
end
