'use strict'
// Shared helpers for the kafkajs compatibility scripts: the client factory, the
// deterministic record generator (mirrored in test_kafkajs.py) and record dumping.

const { Kafka, logLevel } = require('kafkajs')

const LEVELS = {
  NOTHING: logLevel.NOTHING,
  ERROR: logLevel.ERROR,
  WARN: logLevel.WARN,
  INFO: logLevel.INFO,
  DEBUG: logLevel.DEBUG
}

// kafkajs logs go to stderr so that stdout carries only the JSON summary.
function stderrLogCreator () {
  return ({ namespace, level, label, log }) => {
    const { message, ...extra } = log
    process.stderr.write(`${label} [${namespace}] ${message} ${JSON.stringify(extra, (_k, v) => (typeof v === 'bigint' ? String(v) : v))}\n`)
  }
}

function makeKafka (brokers, clientId) {
  return new Kafka({
    clientId,
    brokers: brokers.split(','),
    logLevel: LEVELS[process.env.KAFKAJS_LOG_LEVEL || 'WARN'] ?? logLevel.WARN,
    logCreator: stderrLogCreator,
    retry: { retries: 8, initialRetryTime: 100 }
  })
}

const N_KEYS = 500

// Record i (timestamp base + i; base is recent, as retention deletes old records): a key shared by every N_KEYS-th record, a binary value (with a null
// tombstone and an empty value now and then), an explicit timestamp and headers,
// including a repeated header name.
function makeRecord (i, baseTimestamp) {
  const key = `key-${String(i % N_KEYS).padStart(4, '0')}`
  let value
  if (i % 1000 === 999) {
    value = null
  } else if (i % 1000 === 500) {
    value = Buffer.alloc(0)
  } else {
    const tail = Buffer.alloc(i % 41, 0x79)
    value = Buffer.concat([Buffer.from(`value-${String(i).padStart(6, '0')}-`), Buffer.from([i % 256, 0, 255, 10]), tail])
  }
  const headers = { seq: String(i), bin: Buffer.from([0, i % 256, 255]) }
  if (i % 3 === 0) headers.multi = ['a', Buffer.from([0xfe, i % 256])]
  return { key, value, headers, timestamp: String(baseTimestamp + i) }
}

// One consumed message in a JSON-safe form: bytes as hex, headers as name -> [hex, ...].
function dumpMessage (partition, message) {
  const headers = {}
  for (const [name, raw] of Object.entries(message.headers || {})) {
    const values = Array.isArray(raw) ? raw : [raw]
    headers[name] = values.map((v) => Buffer.from(v).toString('hex'))
  }
  return {
    partition,
    offset: Number(message.offset),
    timestamp: Number(message.timestamp),
    key: message.key === null ? null : message.key.toString('hex'),
    value: message.value === null ? null : message.value.toString('hex'),
    headers
  }
}

function withTimeout (promise, ms, what) {
  let timer
  const timeout = new Promise((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms)
  })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

// Writes to a pipe are asynchronous in Node: exiting before the write callback cuts the
// output at 64 KiB, so both ways out wait for it.
function emit (summary) {
  return new Promise((resolve) => process.stdout.write(JSON.stringify(summary) + '\n', resolve))
}

function fail (error) {
  emit({ ok: false, error: String(error && error.stack ? error.stack : error) }).then(() => process.exit(1))
}

module.exports = { makeKafka, makeRecord, dumpMessage, withTimeout, emit, fail, N_KEYS }
