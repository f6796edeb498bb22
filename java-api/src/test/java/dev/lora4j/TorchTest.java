package dev.lora4j;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;

/** Library-wide settings: version, threads, devices. */
class TorchTest {

    @Test
    void versionIsLibTorchs() {
        assertTrue(Torch.version().matches("\\d+\\.\\d+\\.\\d+.*"), Torch.version());
    }

    @Test
    void threadsCanBeSetAndRead() {
        int before = Torch.getNumThreads();
        try {
            Torch.setNumThreads(1);
            assertEquals(1, Torch.getNumThreads());
            Torch.setNumThreads(2);
            assertEquals(2, Torch.getNumThreads());
        } finally {
            Torch.setNumThreads(before);
        }
    }

    @Test
    void devices() {
        assertEquals(Device.CPU, Torch.device("cpu"));
        assertEquals("cuda:1", Device.parse("cuda:1").toString());
        assertEquals("cpu", Device.CPU.toString());
        assertThrows(IllegalArgumentException.class, () -> Device.parse("cuda:x"));
    }
}
