'use strict'
// Usage: node admin_txn.js BROKERS
//
// The kafkajs admin client, the idempotent producer and transactions against the
// broker. Each step's result goes into one JSON summary line on stdout; the test
// compares it with what Kafka answers.

const { ConfigResourceTypes } = require('kafkajs')
const { makeKafka, makeRecord, withTimeout, fail, emit } = require('./common')

const TIMEOUT_MS = Number(process.env.KAFKAJS_TIMEOUT_MS || 60000)

async function main () {
  const [brokers] = process.argv.slice(2)
  if (!brokers) throw new Error('usage: node admin_txn.js BROKERS')
  const kafka = makeKafka(brokers, 'kafkajs-admin')
  const base = Date.now()
  const s = { ok: true }
  const admin = kafka.admin()
  await admin.connect()

  s.cluster = await admin.describeCluster()
  s.created = await admin.createTopics({
    topics: [
      { topic: 'adm-compact', numPartitions: 2, configEntries: [{ name: 'cleanup.policy', value: 'compact' }] },
      { topic: 'adm-data', numPartitions: 1 }
    ]
  })
  s.createdAgain = await admin.createTopics({ topics: [{ topic: 'adm-data', numPartitions: 1 }] })
  await admin.createPartitions({ topicPartitions: [{ topic: 'adm-compact', count: 4 }] })
  const meta = await admin.fetchTopicMetadata({ topics: ['adm-compact'] })
  s.partitionsAfterGrow = meta.topics[0].partitions.length
  const describeTopicConfigs = async () => {
    const { resources } = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: ConfigResourceTypes.TOPIC, name: 'adm-compact', configNames: ['cleanup.policy', 'retention.ms'] }]
    })
    return Object.fromEntries(resources[0].configEntries.map((e) => [e.configName, e.configValue]))
  }
  s.configsBefore = await describeTopicConfigs()
  // AlterConfigs (not the incremental one) replaces the whole topic config, as in Kafka:
  // cleanup.policy, not named here, goes back to its default.
  await admin.alterConfigs({
    resources: [{ type: ConfigResourceTypes.TOPIC, name: 'adm-compact', configEntries: [{ name: 'retention.ms', value: '86400000' }] }]
  })
  s.configsAfter = await describeTopicConfigs()

  // Idempotent producer: three sends of three records, offsets 0..8.
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 })
  await producer.connect()
  s.idempotentBaseOffsets = []
  for (let k = 0; k < 3; k++) {
    const [r] = await producer.send({ topic: 'adm-data', messages: [0, 1, 2].map((i) => makeRecord(3 * k + i, base)) })
    s.idempotentBaseOffsets.push(Number(r.baseOffset))
  }
  await producer.disconnect()
  const [byTime] = await admin.fetchTopicOffsetsByTimestamp('adm-data', base + 4)
  s.offsetForTimestamp = Number(byTime.offset)

  // Transactions: one committed (record 100 + group offset), one aborted (record 101).
  const tp = kafka.producer({ transactionalId: 'adm-tx', idempotent: true, maxInFlightRequests: 1 })
  await tp.connect()
  const committed = await tp.transaction()
  await committed.send({ topic: 'adm-data', messages: [makeRecord(100, base)] })
  await committed.sendOffsets({ consumerGroupId: 'adm-txn-group', topics: [{ topic: 'adm-data', partitions: [{ partition: 0, offset: '5' }] }] })
  await committed.commit()
  const aborted = await tp.transaction()
  await aborted.send({ topic: 'adm-data', messages: [makeRecord(101, base)] })
  await aborted.abort()
  await tp.disconnect()
  const [txnOffsets] = await admin.fetchOffsets({ groupId: 'adm-txn-group', topics: ['adm-data'] })
  s.txnCommittedOffset = Number(txnOffsets.partitions[0].offset)

  // read_committed (the kafkajs default) sees 0..8 and 100, never 101.
  const consumer = kafka.consumer({ groupId: 'adm-reader', maxWaitTimeInMs: 300 })
  const seen = []
  let ended
  const end = new Promise((resolve) => { ended = resolve })
  await consumer.connect()
  await consumer.subscribe({ topics: ['adm-data'], fromBeginning: true })
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.push(Number(message.headers.seq.toString()))
      if (seen.includes(100)) ended()
    }
  })
  await withTimeout(end, TIMEOUT_MS, 'read_committed consumer reaches the committed record')
  const described = await admin.describeGroups(['adm-reader'])
  s.describedGroup = { state: described.groups[0].state, members: described.groups[0].members.length, protocol: described.groups[0].protocol }
  await consumer.disconnect()
  s.readCommitted = seen
  const ends = await admin.fetchTopicOffsets('adm-data')
  s.endOffset = Number(ends[0].high)

  await admin.setOffsets({ groupId: 'adm-reader', topic: 'adm-data', partitions: [{ partition: 0, offset: '2' }] })
  const [afterSet] = await admin.fetchOffsets({ groupId: 'adm-reader', topics: ['adm-data'] })
  s.offsetAfterSet = Number(afterSet.partitions[0].offset)
  s.groupsBeforeDelete = (await admin.listGroups()).groups.map((g) => g.groupId).sort()
  s.deletedGroups = (await admin.deleteGroups(['adm-reader'])).map((g) => [g.groupId, g.errorCode])
  s.groupsAfterDelete = (await admin.listGroups()).groups.map((g) => g.groupId).sort()

  await admin.deleteTopicRecords({ topic: 'adm-data', partitions: [{ partition: 0, offset: '4' }] })
  const [afterDelete] = await admin.fetchTopicOffsets('adm-data')
  s.lowAfterDeleteRecords = Number(afterDelete.low)

  await admin.deleteTopics({ topics: ['adm-compact', 'adm-data'] })
  s.topicsAfterDelete = (await admin.listTopics()).filter((t) => t.startsWith('adm-')).sort()
  await admin.disconnect()
  await emit(s)
}

main().then(() => process.exit(0), fail)
