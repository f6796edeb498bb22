package dev.lora4j;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** CUDA paths, checked against the CPU; skipped (with the reason) where no GPU can be used. */
class CudaTest {

    @BeforeEach
    void needsCuda() {
        assumeTrue(Torch.cudaAvailable(), "no usable CUDA device (LibTorch " + Torch.version()
                + ", CUDA compiled in: " + Torch.buildInfo().cuda() + ")");
    }

    @Test
    void aTensorRoundTripsThroughTheGpu() {
        try (TensorScope scope = TensorScope.open()) {
            Tensor cpu = Tensor.randn(5, 7);
            Tensor gpu = cpu.to(Torch.device("cuda"));
            assertEquals(Device.Type.CUDA, gpu.device().type());
            assertArrayEquals(cpu.toFloatArray(), gpu.to(Device.CPU).toFloatArray());
        }
    }

    @Test
    void aMatmulOnTheGpuMatchesTheCpu() {
        try (TensorScope scope = TensorScope.open()) {
            Tensor a = Tensor.randn(DType.FLOAT64, 16, 8), b = Tensor.randn(DType.FLOAT64, 8, 4);
            Device cuda = Torch.device("cuda");
            assertArrayEquals(a.matmul(b).toDoubleArray(),
                    a.to(cuda).matmul(b.to(cuda)).to(Device.CPU).toDoubleArray(), 1e-9);
        }
    }
}
