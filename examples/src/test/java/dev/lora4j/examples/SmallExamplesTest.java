package dev.lora4j.examples;

import static org.junit.jupiter.api.Assertions.*;

import org.junit.jupiter.api.Test;

/** The SVD (seed 004) and surgery (seed 001) examples' key results. */
class SmallExamplesTest {

    @Test
    void svdRebuildsTheRankTwoMatrixExactlyFromFortyNumbers() {
        SvdDemo.Result r = SvdDemo.run(10, 2, 0, false);
        assertEquals(2, r.numericalRank());
        assertEquals(100, r.fullParameters());
        assertEquals(40, r.factorParameters());
        assertTrue(r.maxError() < 1e-5, "rebuild error " + r.maxError());
    }

    @Test
    void surgeryWrapsEveryLinearAndOnlyTheAdaptersTrain() {
        SurgeryDemo.Result r = SurgeryDemo.run(4, 8, false);
        long base = 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10;
        long lora = 4L * (784 + 256) + 4L * (256 + 128) + 4L * (128 + 10);
        assertEquals(base, r.parameters());
        assertEquals(base, r.trainableBefore());
        assertEquals(3, r.wrapped());
        assertEquals(base + lora, r.parametersAfter());
        assertEquals(lora, r.trainableAfter());
    }
}
