// A reader group's position, read and set through the official Java client's public API:
// its state lives in a Java-format state synchronizer stream that no other client reads.
// Run by stream_backend/stores/pravega/groups.py as
//   java -cp CLASSPATH ReaderGroups.java CONTROLLER_URI COMMAND ARGS...
// Commands (one JSON document on stdout; errors: one line on stderr, exit 66 not found,
// 73 exists, 1 anything else):
//   position SCOPE GROUP         {"streams": {"SCOPE/STREAM": {"SEGMENT_ID": OFFSET, ...}}}
//   create SCOPE GROUP SCOPE/STREAM SEGMENT_ID=OFFSET...
//                                create GROUP reading STREAM from those positions;
//                                {"created": true}
// Credentials and TLS come from the client's own pravega_client_auth_* environment.
import io.pravega.client.ClientConfig;
import io.pravega.client.admin.ReaderGroupManager;
import io.pravega.client.segment.impl.Segment;
import io.pravega.client.stream.ConfigMismatchException;
import io.pravega.client.stream.ReaderGroup;
import io.pravega.client.stream.ReaderGroupConfig;
import io.pravega.client.stream.ReaderGroupNotFoundException;
import io.pravega.client.stream.Stream;
import io.pravega.client.stream.StreamCut;
import io.pravega.client.stream.impl.StreamCutImpl;

import java.net.URI;
import java.util.HashMap;
import java.util.Map;
import java.util.TreeMap;

public class ReaderGroups {
    public static void main(String[] argv) {
        int code = 0;
        try {
            ClientConfig cc = ClientConfig.builder().controllerURI(URI.create(argv[0])).build();
            String cmd = argv[1], scope = argv[2], group = argv[3];
            try (ReaderGroupManager rgm = ReaderGroupManager.withScope(scope, cc)) {
                if (cmd.equals("position")) {
                    System.out.println(position(rgm, group));
                } else if (cmd.equals("create")) {
                    Stream s = Stream.of(argv[4]);
                    Map<Segment, Long> cut = new HashMap<>();
                    for (int i = 5; i < argv.length; i++) {
                        String[] p = argv[i].split("=", 2);
                        cut.put(new Segment(s.getScope(), s.getStreamName(), Long.parseLong(p[0])), Long.parseLong(p[1]));
                    }
                    ReaderGroupConfig config = ReaderGroupConfig.builder().stream(s, new StreamCutImpl(s, cut)).build();
                    if (exists(rgm, group) || !rgm.createReaderGroup(group, config)) {
                        System.err.println("reader group " + scope + "/" + group + " already exists");
                        code = 73;
                    } else {
                        System.out.println("{\"created\": true}");
                    }
                } else {
                    System.err.println("unknown command " + cmd);
                    code = 64;
                }
            }
        } catch (ConfigMismatchException e) {
            System.err.println("reader group " + argv[2] + "/" + argv[3] + " already exists (reading from elsewhere)");
            code = 73;
        } catch (ReaderGroupNotFoundException e) {
            System.err.println("reader group not found: " + e.getMessage());
            code = 66;
        } catch (Throwable e) {
            System.err.println(e.getClass().getSimpleName() + ": " + e.getMessage());
            code = 1;
        }
        System.exit(code);
    }

    /** createReaderGroup is idempotent for an equal configuration: an import run twice must
     *  not report a group it did not place. */
    static boolean exists(ReaderGroupManager rgm, String group) {
        try {
            rgm.getReaderGroup(group).close();
            return true;
        } catch (ReaderGroupNotFoundException e) {
            return false;
        }
    }

    static String position(ReaderGroupManager rgm, String group) {
        ReaderGroup rg = rgm.getReaderGroup(group);
        StringBuilder out = new StringBuilder("{\"streams\": {");
        String sep = "";
        for (Map.Entry<Stream, StreamCut> e : rg.getStreamCuts().entrySet()) {
            Map<Long, Long> pos = new TreeMap<>();
            for (Map.Entry<Segment, Long> p : e.getValue().asImpl().getPositions().entrySet()) {
                pos.put(p.getKey().getSegmentId(), p.getValue());
            }
            out.append(sep).append('"').append(e.getKey().getScopedName()).append("\": {");
            String s2 = "";
            for (Map.Entry<Long, Long> p : pos.entrySet()) {
                out.append(s2).append('"').append(p.getKey()).append("\": ").append(p.getValue());
                s2 = ", ";
            }
            out.append('}');
            sep = ", ";
        }
        return out.append("}}").toString();
    }
}
