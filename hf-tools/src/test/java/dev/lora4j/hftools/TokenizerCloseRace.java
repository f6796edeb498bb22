package dev.lora4j.hftools;

import dev.lora4j.TensorScope;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.atomic.AtomicReference;

/** Child JVM: threads encode while the tokenizer is closed under them; every call returns or throws IllegalStateException. */
public final class TokenizerCloseRace {

    public static void main(String[] args) throws Exception {
        Path json = Path.of(args[0]);
        int rounds = Integer.parseInt(args[1]);
        List<String> texts = new ArrayList<>();
        for (int i = 0; i < 16; i++) texts.add("the quick brown fox jumps over the lazy dog ".repeat(40) + i);
        AtomicReference<Throwable> wrong = new AtomicReference<>();
        for (int round = 0; round < rounds; round++) {
            BertTokenizer tok = BertTokenizer.fromFile(json, 128);
            CountDownLatch started = new CountDownLatch(3);
            List<Thread> workers = new ArrayList<>();
            for (int w = 0; w < 3; w++) {
                int kind = w;
                Thread t = new Thread(() -> {
                    started.countDown();
                    try (var s = TensorScope.open()) {
                        for (int i = 0; i < 10_000; i++) {
                            switch (kind) {
                                case 0 -> tok.encode(texts).close();
                                case 1 -> tok.ids(texts.get(i % texts.size()));
                                default -> tok.tokens(texts.get(i % texts.size()));
                            }
                        }
                    } catch (IllegalStateException e) {
                        if (!e.getMessage().contains("closed")) wrong.compareAndSet(null, e);
                    } catch (Throwable e) {
                        wrong.compareAndSet(null, e);
                    }
                });
                workers.add(t);
                t.start();
            }
            started.await();
            Thread.sleep(round % 5);
            tok.close();
            for (Thread t : workers) t.join();
            if (wrong.get() != null) {
                wrong.get().printStackTrace(System.out);
                System.exit(1);
            }
        }
        System.out.println("survived");
    }
}
