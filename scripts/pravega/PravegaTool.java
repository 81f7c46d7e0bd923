// Streams shaped by the official Java client, for the Pravega tests: written with routing
// keys, scaled through the controller, sealed. Run from source by Java 17 with the
// standalone's classpath (tests/pravega/javatool.py, scripts/bench_pravega.py):
//   java -cp CP PravegaTool.java CONTROLLER_URI COMMAND ARGS... [; COMMAND ARGS...]
// Commands:
//   create SCOPE STREAM SEGMENTS        scope (if missing) and a fixed-size stream
//   write SCOPE STREAM N KEYS TAG       N events "TAG-i" with routing keys "k<i % KEYS>"
//   scale SCOPE STREAM K                seal every current segment, K new equal key ranges
//   seal SCOPE STREAM
//   segments SCOPE STREAM               print the current segment ids, one per line
//   truncate-head SCOPE STREAM          truncate (controller) at the current segments' starts:
//                                       every sealed predecessor goes
//   bytetruncate SCOPE STREAM OFFSET    truncate a single-segment stream's segment before OFFSET
//                                       (ByteStreamWriter.truncateDataBefore)
//   autoscale SCOPE STREAM KEYS TAG MAXSECONDS
//                                       a stream auto-scaled by event rate (target 1 event/s,
//                                       factor 2, 1 segment), written "TAG-i" with keys
//                                       "k<i % KEYS>" until it split (then 200 more); prints
//                                       the number of events written
//   bench-write SCOPE STREAM SEGMENTS N SIZE
//                                       a fixed stream of SEGMENTS, N events of SIZE bytes with
//                                       keys "k<i % 64>", flushed; prints "events bytes seconds"
//                                       (the writer loop alone, JVM start not included)
//   bench-read SCOPE STREAM             a reader group over the sealed stream, read to its end;
//                                       prints "events bytes seconds" (the reader loop alone)
//   group-read SCOPE STREAM GROUP N     a consumer: reader group GROUP (created at the stream's
//                                       head if absent) reads exactly N events, one payload
//                                       per line, and its reader goes offline (the group keeps
//                                       its position)
//   group-rest SCOPE GROUP N            a consumer of the existing group GROUP reads N events,
//                                       then on until 2 s pass without one (an extra event
//                                       would show); one payload per line
//   group-delete SCOPE GROUP            delete reader group GROUP (and its state stream)
//   read SCOPE STREAM N                 read a stream with a reader group from its head: N
//                                       events, then on until 2 s pass without one (an extra
//                                       event would show); one payload per line, in the order read
import io.pravega.client.ByteStreamClientFactory;
import io.pravega.client.ClientConfig;
import io.pravega.client.EventStreamClientFactory;
import io.pravega.client.admin.ReaderGroupManager;
import io.pravega.client.byteStream.ByteStreamWriter;
import io.pravega.client.stream.EventRead;
import io.pravega.client.stream.EventStreamReader;
import io.pravega.client.stream.ReaderConfig;
import io.pravega.client.stream.ReaderGroupConfig;
import io.pravega.client.stream.Stream;
import io.pravega.client.stream.impl.StreamCutImpl;
import io.pravega.client.admin.StreamManager;
import io.pravega.client.control.impl.ControllerImpl;
import io.pravega.client.control.impl.ControllerImplConfig;
import io.pravega.client.segment.impl.Segment;
import io.pravega.client.stream.EventStreamWriter;
import io.pravega.client.stream.EventWriterConfig;
import io.pravega.client.stream.ScalingPolicy;
import io.pravega.client.stream.StreamConfiguration;
import io.pravega.client.stream.impl.ByteArraySerializer;
import io.pravega.client.stream.impl.StreamImpl;

import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;

public class PravegaTool {
    public static void main(String[] argv) throws Exception {
        ClientConfig cc = ClientConfig.builder().controllerURI(URI.create(argv[0])).build();
        ScheduledExecutorService ex = Executors.newScheduledThreadPool(2);
        ControllerImpl ctl = new ControllerImpl(ControllerImplConfig.builder().clientConfig(cc).build(), ex);
        try (StreamManager sm = StreamManager.create(cc)) {
            List<String> cmd = new ArrayList<>();
            for (int i = 1; i <= argv.length; i++) {
                if (i == argv.length || argv[i].equals(";")) {
                    if (!cmd.isEmpty()) run(cmd, cc, sm, ctl, ex);
                    cmd.clear();
                } else {
                    cmd.add(argv[i]);
                }
            }
        } finally {
            ctl.close();
            ex.shutdownNow();
        }
        System.exit(0);
    }

    interface ReaderBody {
        void run(EventStreamReader<byte[]> r) throws Exception;
    }

    /** One reader in a fresh reader group over the stream from its head; the group is deleted after. */
    static void withReader(ClientConfig cc, String scope, String stream, ReaderBody body) throws Exception {
        String group = "rg" + System.nanoTime();
        try (ReaderGroupManager rgm = ReaderGroupManager.withScope(scope, cc)) {
            rgm.createReaderGroup(group, ReaderGroupConfig.builder().stream(Stream.of(scope, stream))
                    .groupRefreshTimeMillis(100).build());
            try (EventStreamClientFactory f = EventStreamClientFactory.withScope(scope, cc);
                 EventStreamReader<byte[]> r = f.createReader("r", group, new ByteArraySerializer(),
                         ReaderConfig.builder().build())) {
                body.run(r);
            }
            rgm.deleteReaderGroup(group);
        }
    }

    static void run(List<String> a, ClientConfig cc, StreamManager sm, ControllerImpl ctl,
                    ScheduledExecutorService ex) throws Exception {
        String scope = a.get(1), stream = a.get(2);
        switch (a.get(0)) {
            case "create":
                sm.createScope(scope);
                sm.createStream(scope, stream, StreamConfiguration.builder()
                        .scalingPolicy(ScalingPolicy.fixed(Integer.parseInt(a.get(3)))).build());
                break;
            case "write": {
                int n = Integer.parseInt(a.get(3)), keys = Integer.parseInt(a.get(4));
                try (EventStreamClientFactory f = EventStreamClientFactory.withScope(scope, cc);
                     EventStreamWriter<byte[]> w = f.createEventWriter(stream, new ByteArraySerializer(),
                             EventWriterConfig.builder().build())) {
                    for (int i = 0; i < n; i++) {
                        w.writeEvent("k" + (i % keys), (a.get(5) + "-" + i).getBytes(StandardCharsets.UTF_8));
                    }
                    w.flush();
                }
                break;
            }
            case "scale": {
                int k = Integer.parseInt(a.get(3));
                List<Long> sealed = new ArrayList<>();
                for (Segment s : ctl.getCurrentSegments(scope, stream).join().getSegments()) {
                    sealed.add(s.getSegmentId());
                }
                Map<Double, Double> ranges = new HashMap<>();
                for (int i = 0; i < k; i++) {
                    ranges.put((double) i / k, i + 1 == k ? 1.0 : (double) (i + 1) / k);
                }
                if (!ctl.scaleStream(new StreamImpl(scope, stream), sealed, ranges, ex).getFuture().join()) {
                    throw new IllegalStateException("scale refused");
                }
                break;
            }
            case "seal":
                sm.sealStream(scope, stream);
                break;
            case "autoscale": {
                int keys = Integer.parseInt(a.get(3));
                long deadline = System.currentTimeMillis() + 1000L * Integer.parseInt(a.get(5));
                sm.createScope(scope);
                sm.createStream(scope, stream, StreamConfiguration.builder()
                        .scalingPolicy(ScalingPolicy.byEventRate(1, 2, 1)).build());
                int i = 0, after = -1;
                try (EventStreamClientFactory f = EventStreamClientFactory.withScope(scope, cc);
                     EventStreamWriter<byte[]> w = f.createEventWriter(stream, new ByteArraySerializer(),
                             EventWriterConfig.builder().build())) {
                    long nextLook = 0;
                    while (after < 0 || i < after) {
                        w.writeEvent("k" + (i % keys), (a.get(4) + "-" + i).getBytes(StandardCharsets.UTF_8));
                        i++;
                        if (i % 50 == 0) {
                            w.flush();
                            Thread.sleep(100);  // about 500 events/s: far above the target, light on the server
                        }
                        if (after < 0 && System.currentTimeMillis() >= nextLook) {
                            nextLook = System.currentTimeMillis() + 1000;
                            if (ctl.getCurrentSegments(scope, stream).join().getSegments().size() > 1) {
                                after = i + 200;
                            } else if (System.currentTimeMillis() > deadline) {
                                throw new IllegalStateException("no auto-scale within " + a.get(5) + " s");
                            }
                        }
                    }
                    w.flush();
                }
                System.out.println(i);
                break;
            }
            case "truncate-head": {
                Map<Segment, Long> cut = new HashMap<>();
                for (Segment s : ctl.getCurrentSegments(scope, stream).join().getSegments()) {
                    cut.put(s, 0L);
                }
                if (!sm.truncateStream(scope, stream, new StreamCutImpl(Stream.of(scope, stream), cut))) {
                    throw new IllegalStateException("truncate refused");
                }
                break;
            }
            case "bytetruncate": {
                try (ByteStreamClientFactory f = ByteStreamClientFactory.withScope(scope, cc);
                     ByteStreamWriter w = f.createByteStreamWriter(stream)) {
                    w.truncateDataBefore(Long.parseLong(a.get(3)));
                }
                break;
            }
            case "bench-write": {
                int segs = Integer.parseInt(a.get(3)), n = Integer.parseInt(a.get(4)), size = Integer.parseInt(a.get(5));
                sm.createScope(scope);
                sm.createStream(scope, stream, StreamConfiguration.builder()
                        .scalingPolicy(ScalingPolicy.fixed(segs)).build());
                byte[] payload = new byte[size];
                new java.util.Random(7).nextBytes(payload);
                try (EventStreamClientFactory f = EventStreamClientFactory.withScope(scope, cc);
                     EventStreamWriter<byte[]> w = f.createEventWriter(stream, new ByteArraySerializer(),
                             EventWriterConfig.builder().build())) {
                    long t0 = System.nanoTime();
                    for (int i = 0; i < n; i++) {
                        w.writeEvent("k" + (i % 64), payload);
                    }
                    w.flush();
                    System.out.println(n + " " + (long) n * size + " " + (System.nanoTime() - t0) / 1e9);
                }
                break;
            }
            case "bench-read":
                withReader(cc, scope, stream, r -> {
                    long t0 = System.nanoTime(), last = t0, events = 0, bytes = 0;
                    while (true) {
                        EventRead<byte[]> e = r.readNextEvent(2000);
                        if (e.getEvent() != null) {
                            events++;
                            bytes += e.getEvent().length;
                            last = System.nanoTime();
                        } else if (!e.isCheckpoint()) {
                            break;  // a sealed stream read to its end (the 2 s wait is not counted)
                        }
                    }
                    System.out.println(events + " " + bytes + " " + (last - t0) / 1e9);
                });
                break;
            case "read":
                withReader(cc, scope, stream, r -> {
                    long want = Long.parseLong(a.get(3)), got = 0;
                    long deadline = System.currentTimeMillis() + 120_000;
                    while (System.currentTimeMillis() < deadline) {
                        EventRead<byte[]> e = r.readNextEvent(got < want ? 1000 : 2000);
                        if (e.getEvent() != null) {
                            System.out.println(new String(e.getEvent(), StandardCharsets.UTF_8));
                            got++;
                        } else if (!e.isCheckpoint() && got >= want) {
                            break;
                        }
                    }
                });
                break;
            case "group-read":
            case "group-rest": {
                boolean rest = a.get(0).equals("group-rest");
                String group = rest ? a.get(2) : a.get(3);
                long want = Long.parseLong(a.get(rest ? 3 : 4)), got = 0;
                try (ReaderGroupManager rgm = ReaderGroupManager.withScope(scope, cc)) {
                    if (!rest) {
                        rgm.createReaderGroup(group, ReaderGroupConfig.builder().stream(Stream.of(scope, stream))
                                .groupRefreshTimeMillis(100).build());
                    }
                    try (EventStreamClientFactory f = EventStreamClientFactory.withScope(scope, cc);
                         EventStreamReader<byte[]> r = f.createReader("consumer", group, new ByteArraySerializer(),
                                 ReaderConfig.builder().build())) {
                        long deadline = System.currentTimeMillis() + 180_000;
                        while ((got < want || rest) && System.currentTimeMillis() < deadline) {
                            EventRead<byte[]> e = r.readNextEvent(got < want ? 1000 : 2000);
                            if (e.getEvent() != null) {
                                System.out.println(new String(e.getEvent(), StandardCharsets.UTF_8));
                                got++;
                            } else if (got >= want && !e.isCheckpoint()) {
                                break;
                            }
                        }
                    }
                }
                if (got < want) throw new IllegalStateException("read " + got + " of " + want + " events");
                break;
            }
            case "group-delete":
                try (ReaderGroupManager rgm = ReaderGroupManager.withScope(scope, cc)) {
                    rgm.deleteReaderGroup(a.get(2));
                }
                break;
            case "segments":
                for (Segment s : ctl.getCurrentSegments(scope, stream).join().getSegments()) {
                    System.out.println(s.getSegmentId());
                }
                break;
            default:
                throw new IllegalArgumentException("unknown command " + a.get(0));
        }
    }
}
