package main

import "strconv"

// m is a JSON object of the spec.
type m = map[string]any

// augment adds to the converted spec (a JSON document) what the proto's
// annotations do not say; see the package comment.
func augment(doc m) {
	// Every status is declared: no "default" for the rest.
	for _, ops := range doc["paths"].(m) {
		for _, op := range ops.(m) {
			delete(op.(m)["responses"].(m), "default")
		}
	}
	doc["info"] = m{
		"title":   "eventproc sink HTTP API",
		"version": "v1",
		"description": "The sink's HTTP/JSON API, converted from the OpenAPI v2 that protoc-gen-openapiv2 generates " +
			"from event/v1/sink.proto, plus the statuses, media types and paths of the HTTP front (event/httpapi). " +
			"Errors are google.rpc.Status as JSON. With authentication on, every path but /healthz, /readyz, " +
			"/openapi.json and the console answers 401 without a valid credential.",
	}
	comps := doc["components"].(m)
	schemas := comps["schemas"].(m)
	// The sink takes a type's number as well as its name.
	typ := schemas["eventV1Type"].(m)
	schemas["eventV1Type"] = m{"description": typ["description"], "anyOf": []any{
		m{"type": "string", "enum": typ["enum"]}, m{"type": "integer", "format": "int32"},
	}}
	schemas["CloudEvent"] = m{
		"type":        "object",
		"description": "A CloudEvent (v1.0) in the JSON format. Attributes other than id, type, time and data travel in the event's metadata as ce-NAME.",
		"required":    []string{"specversion", "id", "source", "type"},
		"properties": m{
			"specversion":     m{"type": "string", "enum": []string{"1.0"}},
			"id":              m{"type": "string"},
			"source":          m{"type": "string"},
			"type":            m{"type": "string", "description": "An event type's enum name (TYPE_HELLO) or its --ce-type name."},
			"subject":         m{"type": "string"},
			"time":            m{"type": "string", "format": "date-time"},
			"datacontenttype": m{"type": "string"},
			"dataschema":      m{"type": "string"},
			"data":            m{"description": "The data, a JSON value (the event's payload)."},
			"data_base64":     m{"type": "string", "format": "byte", "description": "The data as base64 (the event's data bytes)."},
			"sequence":        m{"type": "string", "description": "In subscriptions (NDJSON): the sequence number."},
			"missed":          m{"type": "integer", "description": "In subscriptions (NDJSON): events missed just before this one."},
		},
	}
	schemas["CloudEventBatch"] = m{"type": "array", "minItems": 1, "items": ref("CloudEvent")}
	schemas["CloudEventResults"] = m{
		"type":        "array",
		"description": "The answer to a batch: per event, in order, its HTTP status and its reply (200) or error.",
		"items": m{
			"type":     "object",
			"required": []string{"status"},
			"properties": m{
				"status": m{"type": "integer"},
				"event":  ref("CloudEvent"),
				"error":  ref("rpcStatus"),
			},
		},
	}
	paths := doc["paths"].(m)

	send := paths["/v1/events"].(m)["post"].(m)
	send["description"] = "The body is an event as JSON, or a CloudEvent: binary mode (ce- headers, any body as its data), " +
		"structured (application/cloudevents+json) or a batch (application/cloudevents-batch+json, answered 200 with " +
		"per-event results). Replies come back in the request's mode."
	body := send["requestBody"].(m)
	content := body["content"].(m)
	content["application/cloudevents+json"] = m{"schema": ref("CloudEvent")}
	content["application/cloudevents-batch+json"] = m{"schema": ref("CloudEventBatch")}
	content["*/*"] = m{"schema": m{}} // binary mode: the data, of any type
	send["parameters"] = headers(
		"Grpc-Timeout", "deadline in gRPC's syntax (500m, 2S)",
		"Request-Timeout", "deadline: 500ms, 2s or seconds",
		"traceparent", "W3C trace context", "tracestate", "W3C trace context",
		"ce-specversion", "CloudEvents binary mode: 1.0", "ce-id", "CloudEvents binary mode",
		"ce-source", "CloudEvents binary mode", "ce-type", "CloudEvents binary mode",
		"ce-subject", "CloudEvents binary mode", "ce-time", "CloudEvents binary mode",
		"ce-dataschema", "CloudEvents binary mode",
		"Idempotency-Key", "durable and --idempotent routes: a retry with the same key is stored, or sent to the processor, once and answered as the first",
	)
	resps := send["responses"].(m)
	ok := resps["200"].(m)
	ok["description"] = "The processor's reply: an event (plain JSON), a CloudEvent in the request's mode, or a batch's results."
	okContent := ok["content"].(m)
	okContent["application/json"] = m{"schema": m{"oneOf": []any{ref("v1Event"), ref("CloudEventResults")}}}
	okContent["application/cloudevents+json"] = m{"schema": ref("CloudEvent")}
	okContent["*/*"] = m{"schema": m{}}
	resps["202"] = m{
		"description": "A broadcast route accepted the event (every live processor of the route took it; the body " +
			"holds its id), or a durable route stored it (its id, sequence and whether it was a duplicate).",
		"content": m{"application/json": m{"schema": m{
			"type": "object",
			"properties": m{
				"id":        m{"type": "string"},
				"sequence":  m{"type": "integer", "format": "uint64"},
				"duplicate": m{"type": "boolean"},
			},
			"required": []string{"id"},
		}}},
	}
	resps["204"] = m{"description": "The processor consumed the event."}
	errors(resps, map[int]string{
		400: "Not a valid event: malformed JSON, an unknown field, type or CloudEvents type, a missing type or attribute, " +
			"a payload nested too deeply, a bad deadline header; or the processor's INVALID_ARGUMENT.",
		401: "Authentication is on and the credential is missing or invalid (WWW-Authenticate says which).",
		403: "The credential's scopes do not include the event's type; or the processor's PERMISSION_DENIED.",
		404: "The processor's NOT_FOUND.",
		405: "A method other than POST on /v1/events (Allow: POST).",
		408: "The body sent nothing for --body-read-timeout.",
		413: "The body is larger than --max-body-bytes.",
		409: "An --idempotent route's Idempotency-Key is still in progress (ABORTED): the first request with it has not been answered by this one's deadline.",
		422: "An Idempotency-Key was used before with a different event.",
		429: "Over --rate-limit (Retry-After), too many requests pending for a processor, or a durable route's store is full (Retry-After).",
		500: "The processor's reply cannot be written as JSON; or the processor's INTERNAL.",
		501: "The type has no route.",
		503: "No live processor for the type, or its stream broke while the event waited.",
		504: "The processor did not answer by the deadline.",
	})

	sub := paths["/v1/events:subscribe"].(m)["get"].(m)
	params := sub["parameters"].([]any)
	for _, p := range params {
		if p := p.(m); p["name"] == "types" {
			p["description"] = "The types to receive; at least one. Repeatable or comma-separated; names with or without TYPE_, in any case."
			p["schema"] = m{"type": "array", "items": m{"type": "string"}}
			p["explode"] = true
			p["style"] = "form"
		}
	}
	sub["parameters"] = append(params,
		query("last_event_id", "Resume after this sequence number (as lastEventId; the Last-Event-ID header wins)."),
		m{"name": "format", "in": "query", "description": "json (default): events; cloudevents: CloudEvents in the JSON format.",
			"schema": m{"type": "string", "enum": []string{"json", "cloudevents"}}},
		query("ticket", "A ticket from POST /v1/tickets, for an EventSource (which cannot send headers)."),
		headers("Last-Event-ID", "Resume after this sequence number.")[0],
		headers("Request-Timeout", "Ends the stream at this deadline.")[0],
	)
	sub["responses"].(m)["200"] = m{
		"description": "The stream: Server-Sent Events for clients that accept text/event-stream, else newline-delimited JSON " +
			"(a SubscribeResponse per line as {\"result\":…}, or a CloudEvent with format=cloudevents; an {\"error\":…} line ends it).",
		"content": m{
			"text/event-stream":    m{"schema": m{"type": "string"}},
			"application/x-ndjson": m{"schema": m{"type": "string"}},
		},
	}
	errors(sub["responses"].(m), map[int]string{
		400: "No types, an unknown type or query parameter, a bad format.",
		401: "Authentication is on and the credential (or ticket) is missing or invalid.",
		403: "The credential's scopes do not include a type.",
		405: "A method other than GET.",
		429: "Over --max-subscribers, or over --rate-limit.",
		503: "The sink is shutting down.",
	})

	paths["/v1/tickets"] = m{"post": m{
		"summary":     "Mint a single-use ticket for an EventSource subscription (authentication on only; else 404).",
		"operationId": "Tickets_Issue",
		"responses": errors(m{
			"200": jsonResponse("The ticket.", m{"type": "object", "required": []string{"ticket", "expires_at"}, "properties": m{
				"ticket": m{"type": "string"}, "expires_at": m{"type": "string", "format": "date-time"}}}),
		}, map[int]string{
			401: "The credential is missing or invalid.",
			404: "Authentication is off: there are no tickets.",
			405: "A method other than POST.",
			429: "Over --rate-limit.",
		}),
	}}
	paths["/v1/types"] = m{"get": m{
		"summary": "The event types, and which have a route.", "operationId": "Types_List",
		"responses": errors(m{"200": jsonResponse("The types.", m{"type": "object", "properties": m{"types": m{"type": "array",
			"items": m{"type": "object", "properties": m{"name": m{"type": "string"}, "number": m{"type": "integer"},
				"routed": m{"type": "boolean"}}}}}})}, map[int]string{401: "Authentication is on and the credential is missing or invalid.", 405: "A method other than GET."}),
	}}
	num := m{"type": "number"}
	counts := m{"type": "object", "description": "Events answered, by canonical gRPC code name; codes never seen are left out.",
		"additionalProperties": m{"type": "integer"}}
	latency := m{"type": "object", "description": "The cumulative latency histogram in seconds: counts[i] events took at most bounds[i].",
		"properties": m{"count": m{"type": "integer"}, "sum": num,
			"bounds": m{"type": "array", "items": num}, "counts": m{"type": "array", "items": m{"type": "integer"}}}}
	paths["/v1/stats"] = m{"get": m{
		"summary": "A snapshot of the sink's metrics, for the console's charts: cumulative counts per type and code, " +
			"latency histograms, subscribers, live streams and requests in flight per target. Needs the read:metrics scope.",
		"operationId": "Stats_Get",
		"responses": errors(m{"200": jsonResponse("The snapshot.", m{"type": "object", "properties": m{
			"time": m{"type": "string", "format": "date-time"},
			"types": m{"type": "array", "items": m{"type": "object", "properties": m{
				"type": m{"type": "string"}, "events": counts, "latency": latency}}},
			"subscribers": num,
			"targets": m{"type": "array", "items": m{"type": "object", "properties": m{
				"target": m{"type": "string"}, "streams_live": num, "inflight": num}}},
		}})}, map[int]string{
			401: "Authentication is on and the credential is missing or invalid.",
			403: "The credential's scopes do not include read:metrics.",
			405: "A method other than GET.",
			500: "The metrics registry failed.",
		}),
	}}
	str, seq := m{"type": "string"}, m{"type": "integer", "format": "uint64"}
	deadErrors := map[int]string{
		400: "No or an unknown type, or a bad after, limit or body.",
		401: "Authentication is on and the credential is missing or invalid.",
		403: "The credential's scopes do not include replay:<type>.",
		404: "The type has no durable route, or nothing to replay.",
		405: "Another method.",
		503: "The durable store is unreachable.",
	}
	paths["/v1/deadletters"] = m{"get": m{
		"summary":     "The dead letters of a durable route: events that failed for good, with why. Needs the replay:<type> scope.",
		"operationId": "DeadLetters_List",
		"parameters": []any{
			m{"name": "type", "in": "query", "required": true, "description": "The event type, as in --route.", "schema": str},
			query("after", "List those after this dead-letter sequence (the previous page's next)."),
			query("limit", "At most this many."),
		},
		"responses": errors(m{"200": jsonResponse("A page of dead letters.", m{"type": "object", "properties": m{
			"type": str, "next": seq,
			"deadletters": m{"type": "array", "items": m{"type": "object", "properties": m{
				"sequence": seq, "code": str, "reason": str, "deliveries": m{"type": "integer"},
				"accepted": m{"type": "string", "format": "date-time"}, "dead_at": m{"type": "string", "format": "date-time"},
				"stored_sequence": seq, "event": m{"nullable": true, "allOf": []any{ref("v1Event")}},
			}}},
		}})}, deadErrors),
	}}
	paths["/v1/deadletters:replay"] = m{"post": m{
		"summary":     "Stores dead letters again for delivery (the oldest 1000 without sequences) and removes them from the dead letters. Needs the replay:<type> scope.",
		"operationId": "DeadLetters_Replay",
		"requestBody": m{"required": true, "content": m{"application/json": m{"schema": m{"type": "object",
			"required":   []string{"type"},
			"properties": m{"type": str, "sequences": m{"type": "array", "items": seq}}}}}},
		"responses": errors(m{"200": jsonResponse("What was replayed, and why it stopped early, if it did.", m{"type": "object", "properties": m{
			"error": str,
			"replayed": m{"type": "array", "items": m{"type": "object", "properties": m{
				"dead_sequence": seq, "sequence": seq, "duplicate": m{"type": "boolean"}}}},
		}})}, deadErrors),
	}}
	paths["/healthz"] = m{"get": m{
		"summary": "Liveness: the process is up.", "operationId": "Health_Live",
		"responses": errors(m{"200": m{"description": "ok", "content": m{"text/plain": m{"schema": m{"type": "string"}}}}},
			map[int]string{405: "A method other than GET."}),
	}}
	readiness := m{"type": "object", "properties": m{"ready": m{"type": "boolean"}, "routes": m{"type": "array", "items": m{"type": "object"}}}}
	paths["/readyz"] = m{"get": m{
		"summary": "Readiness: every route has a live processor stream.", "operationId": "Health_Ready",
		"responses": errors(m{
			"200": jsonResponse("Ready, with every route's status.", readiness),
			"503": jsonResponse("Not ready (or shutting down), with every route's status.", readiness),
		}, map[int]string{405: "A method other than GET."}),
	}}
	paths["/openapi.json"] = m{"get": m{
		"summary": "This spec.", "operationId": "OpenAPI_Get",
		"responses": errors(m{"200": jsonResponse("The OpenAPI 3 spec.", m{"type": "object"})}, map[int]string{405: "A method other than GET."}),
	}}
}

// ref is a reference to a component schema.
func ref(name string) m { return m{"$ref": "#/components/schemas/" + name} }

// jsonResponse is a response with a JSON body of schema.
func jsonResponse(desc string, schema m) m {
	return m{"description": desc, "content": m{"application/json": m{"schema": schema}}}
}

// errors adds an error response (a google.rpc.Status) per status to resps.
func errors(resps m, byStatus map[int]string) m {
	for code, desc := range byStatus {
		resps[strconv.Itoa(code)] = jsonResponse(desc, ref("rpcStatus"))
	}
	return resps
}

// headers returns optional string header parameters: name, description, ….
func headers(nameDesc ...string) []any {
	var out []any
	for i := 0; i+1 < len(nameDesc); i += 2 {
		out = append(out, m{"name": nameDesc[i], "in": "header", "description": nameDesc[i+1], "schema": m{"type": "string"}})
	}
	return out
}

// query is an optional string query parameter.
func query(name, desc string) m {
	return m{"name": name, "in": "query", "description": desc, "schema": m{"type": "string"}}
}
