'use strict'
// Usage: node produce_consume.js BROKERS OUT_DIR [N_RECORDS]
//
// Admin creates one 3-partition topic per codec (none, gzip); a producer writes N keyed
// records with headers to each; one consumer in a consumer group reads both topics back
// from the beginning and commits. Every consumed record is written to
// OUT_DIR/<codec>.json; stdout gets one JSON summary line (ok, counts, offsets).

const fs = require('fs')
const path = require('path')
const { CompressionTypes } = require('kafkajs')
const { makeKafka, makeRecord, dumpMessage, withTimeout, fail, emit } = require('./common')

const CODECS = { none: CompressionTypes.None, gzip: CompressionTypes.GZIP }
const PARTITIONS = 3
const CHUNK = 500
const TIMEOUT_MS = Number(process.env.KAFKAJS_TIMEOUT_MS || 120000)

async function main () {
  const [brokers, outDir, nArg] = process.argv.slice(2)
  if (!brokers || !outDir) throw new Error('usage: node produce_consume.js BROKERS OUT_DIR [N]')
  const n = Number(nArg || 10000)
  const kafka = makeKafka(brokers, 'kafkajs-produce-consume')
  const topics = Object.keys(CODECS).map((codec) => ({ codec, topic: `kafkajs-${codec}` }))
  const baseTimestamp = Date.now()
  const summary = { ok: true, n, baseTimestamp }

  const admin = kafka.admin()
  await admin.connect()
  summary.created = await admin.createTopics({
    waitForLeaders: true,
    topics: topics.map(({ topic }) => ({ topic, numPartitions: PARTITIONS, replicationFactor: 1 }))
  })
  const meta = await admin.fetchTopicMetadata({ topics: topics.map((t) => t.topic) })
  summary.metadataPartitions = Object.fromEntries(meta.topics.map((t) => [t.name, t.partitions.length]))

  const producer = kafka.producer({ allowAutoTopicCreation: false })
  await producer.connect()
  for (const { codec, topic } of topics) {
    for (let start = 0; start < n; start += CHUNK) {
      const messages = []
      for (let i = start; i < Math.min(n, start + CHUNK); i++) messages.push(makeRecord(i, baseTimestamp))
      await producer.send({ topic, messages, acks: -1, compression: CODECS[codec] })
    }
  }
  await producer.disconnect()

  const groupId = 'kafkajs-produce-consume'
  const consumer = kafka.consumer({ groupId, allowAutoTopicCreation: false })
  const consumed = Object.fromEntries(topics.map(({ codec }) => [codec, []]))
  const codecOf = Object.fromEntries(topics.map(({ codec, topic }) => [topic, codec]))
  let total = 0
  let resolveDone
  const done = new Promise((resolve) => { resolveDone = resolve })
  await consumer.connect()
  await consumer.subscribe({ topics: topics.map((t) => t.topic), fromBeginning: true })
  await consumer.run({
    eachBatchAutoResolve: true,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary }) => {
      const sink = consumed[codecOf[batch.topic]]
      for (const message of batch.messages) {
        sink.push(dumpMessage(batch.partition, message))
        resolveOffset(message.offset)
      }
      total += batch.messages.length
      await commitOffsetsIfNecessary()
      if (total >= n * topics.length) resolveDone()
    }
  })
  await withTimeout(done, TIMEOUT_MS, `consuming ${n * topics.length} records (got ${total})`)
  await consumer.disconnect()

  summary.consumed = {}
  summary.endOffsets = {}
  summary.committed = {}
  for (const { codec, topic } of topics) {
    fs.writeFileSync(path.join(outDir, `${codec}.json`), JSON.stringify(consumed[codec]))
    summary.consumed[codec] = consumed[codec].length
    const ends = await admin.fetchTopicOffsets(topic)
    summary.endOffsets[topic] = Object.fromEntries(ends.map((p) => [p.partition, Number(p.high)]))
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] })
    summary.committed[topic] = Object.fromEntries(committed.partitions.map((p) => [p.partition, Number(p.offset)]))
  }
  const groups = await admin.listGroups()
  summary.groups = groups.groups.map((g) => g.groupId).sort()
  await admin.disconnect()
  await emit(summary)
}

main().then(() => process.exit(0), fail)
